#include "clientaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include <h2o.h>

void lw_clientaddr(h2o_req_t *req, char out[LW_IP_MAX])
{
    struct sockaddr_storage ss;
    out[0] = '\0';
    if (!req->conn->callbacks->get_peername)
        return;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (len == 0)
        return;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, LW_IP_MAX);
    } else if (ss.ss_family == AF_INET6) {
        struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, &a->s6_addr[12], out, LW_IP_MAX);
        else
            inet_ntop(AF_INET6, a, out, LW_IP_MAX);
    }
}
