#!/usr/bin/perl
# make_geoip.pl DIR — writes the small GeoIP world the tests use.
#
# Needs only Debian's perl and libmaxmind-db-writer-perl (MaxMind::DB::Writer::Tree).
# Writes, with the record layouts of MaxMind's GeoIP2 databases:
#   DIR/GeoIP2-City.mmdb             database_type "GeoIP2-City"
#   DIR/GeoLite2-ASN.mmdb            database_type "GeoLite2-ASN"
#   DIR/GeoIP2-Connection-Type.mmdb  database_type "GeoIP2-Connection-Type"
#   DIR/GeoIP2-Anonymous-IP.mmdb     database_type "GeoIP2-Anonymous-IP"
# and, in a separate folder so that it is not loaded together with the City db,
#   DIR/country-only/geo-whois-asn-country.mmdb
#       the layout of the free @ip-location-db/geo-whois-asn-country-mmdb
#       ({"country_code": "PT"}, database_type "country ipvAll").
#   DIR/unlabelled/custom.mmdb
#       the ASN layout under a database_type no reader knows ("Example-Custom-Data"),
#       for testing that such a file is recognised by its records.
#
# The world (documentation address ranges, so nothing real is ever matched;
# coordinates as stored, then as Linkward rounds them for the accuracy radius):
#
# | network           | city, region, country               | stored lat, lon    | acc km | rounded         | connection | ASN, organisation              | anonymous                  |
# |-------------------|-------------------------------------|--------------------|--------|-----------------|------------|--------------------------------|----------------------------|
# | 198.51.100.0/26   | Lisbon, Lisbon, PT                  | 38.7223, -9.1393   | 20     | 38.7, -9.1      | Cable/DSL  | AS64500 Lisbon Fibre           |                            |
# | 198.51.100.64/26  | Porto, Porto, PT                    | 41.1496, -8.6110   | 20     | 41.1, -8.6      | Cable/DSL  | AS64500 Lisbon Fibre           |                            |
# | 198.51.100.128/26 | Madrid, Madrid, ES                  | 40.4168, -3.7038   | 50     | 40.4, -3.7      | Cable/DSL  | AS64503 Meseta Telecom         |                            |
# | 198.51.100.192/26 | FR only (no city, no coordinates)   |                    |        |                 |            |                                |                            |
# | 203.0.113.0/26    | Sydney, New South Wales, AU         | -33.8688, 151.2093 | 100    | -33.9, 151.2    | Cellular   | AS64501 Southern Mobile        |                            |
# | 203.0.113.64/26   | New York, New York, US              | 40.7128, -74.0060  | 5      | 40.71, -74.01   | Corporate  | AS64504 Hudson Corp            |                            |
# | 203.0.113.128/25  | in no database                      |                    |        |                 |            |                                |                            |
# | 192.0.2.0/26      | Amsterdam, North Holland, NL        | 52.3676, 4.9041    | 50     | 52.4, 4.9       | Corporate  | AS64502 Polder Hosting         | VPN, hosting               |
# | 192.0.2.64/26     | Frankfurt am Main, Hesse, DE        | 50.1109, 8.6821    | 100    | 50.1, 8.7       | Corporate  | AS64505 Main Relay Association | Tor exit                   |
# | 192.0.2.128/26    | São Paulo, São Paulo, BR            | -23.5505, -46.6333 | 500    | -24, -47        | Satellite  | AS64506 Cruzeiro Satélite      | public + residential proxy |
# | 2001:db8::/48     | Berlin, Berlin, DE                  | 52.5244, 13.4105   | 10     | 52.52, 13.41    | Cable/DSL  | AS64507 Spree Kabel            |                            |
#
# Every anonymous range also has is_anonymous. Lisbon's names carry a Portuguese
# translation too ("Lisboa"), so that readers can be checked to pick English.
#
# The country-only database maps: 198.51.100.0/25 PT, 198.51.100.128/26 ES,
# 198.51.100.192/26 FR, 203.0.113.0/26 AU, 203.0.113.64/26 US, 192.0.2.0/26 NL,
# 192.0.2.64/26 DE, 192.0.2.128/26 BR, 2001:db8::/32 DE. The unlabelled one maps
# 198.51.100.0/24 to AS64511 "Unlabelled Networks".
#
# The output is deterministic (fixed build epoch; the writer sorts map keys), and
# every file is written to a temporary name and renamed, so a reader never sees a
# half-written database. Keep docs/geoip.md in step with this table.
use strict;
use warnings;
use utf8;

use File::Path qw(make_path);
use MaxMind::DB::Writer::Tree;

my $dir = shift @ARGV;
die "usage: $0 DIR\n" unless defined $dir && $dir ne '' && !@ARGV;

# 2026-01-01T00:00:00Z: a fixed epoch makes the files byte-for-byte reproducible.
my $EPOCH = 1767225600;

my %TYPES = (
    # GeoIP2 City / Country
    city                 => 'map',
    continent            => 'map',
    country              => 'map',
    registered_country   => 'map',
    location             => 'map',
    subdivisions         => [ 'array', 'map' ],
    names                => 'map',
    en                   => 'utf8_string',
    pt                   => 'utf8_string',
    geoname_id           => 'uint32',
    iso_code             => 'utf8_string',
    code                 => 'utf8_string',
    accuracy_radius      => 'uint16',
    latitude             => 'double',
    longitude            => 'double',
    time_zone            => 'utf8_string',
    # ASN
    autonomous_system_number       => 'uint32',
    autonomous_system_organization => 'utf8_string',
    # Connection-Type
    connection_type => 'utf8_string',
    # Anonymous-IP
    is_anonymous         => 'boolean',
    is_anonymous_vpn     => 'boolean',
    is_hosting_provider  => 'boolean',
    is_public_proxy      => 'boolean',
    is_residential_proxy => 'boolean',
    is_tor_exit_node     => 'boolean',
    # @ip-location-db
    country_code => 'utf8_string',
);

my %CONTINENT = (
    EU => [ 6255148, 'Europe' ],
    OC => [ 6255151, 'Oceania' ],
    NA => [ 6255149, 'North America' ],
    SA => [ 6255150, 'South America' ],
);
my %COUNTRY = (
    PT => [ 2264397, 'Portugal',      'EU' ],
    ES => [ 2510769, 'Spain',         'EU' ],
    FR => [ 3017382, 'France',        'EU' ],
    AU => [ 2077456, 'Australia',     'OC' ],
    US => [ 6252001, 'United States', 'NA' ],
    NL => [ 2750405, 'Netherlands',   'EU' ],
    DE => [ 2921044, 'Germany',       'EU' ],
    BR => [ 3469034, 'Brazil',        'SA' ],
);

# network, country, [city, region, lat, lon, accuracy, time zone], connection, [asn, org], {anonymous flags}
my @WORLD = (
    [ '198.51.100.0/26', 'PT', [ 'Lisbon', 'Lisbon', 38.7223, -9.1393, 20, 'Europe/Lisbon' ],
      'Cable/DSL', [ 64500, 'Lisbon Fibre' ], {} ],
    [ '198.51.100.64/26', 'PT', [ 'Porto', 'Porto', 41.1496, -8.6110, 20, 'Europe/Lisbon' ],
      'Cable/DSL', [ 64500, 'Lisbon Fibre' ], {} ],
    [ '198.51.100.128/26', 'ES', [ 'Madrid', 'Madrid', 40.4168, -3.7038, 50, 'Europe/Madrid' ],
      'Cable/DSL', [ 64503, 'Meseta Telecom' ], {} ],
    [ '198.51.100.192/26', 'FR', undef, undef, undef, {} ],
    [ '203.0.113.0/26', 'AU', [ 'Sydney', 'New South Wales', -33.8688, 151.2093, 100, 'Australia/Sydney' ],
      'Cellular', [ 64501, 'Southern Mobile' ], {} ],
    [ '203.0.113.64/26', 'US', [ 'New York', 'New York', 40.7128, -74.0060, 5, 'America/New_York' ],
      'Corporate', [ 64504, 'Hudson Corp' ], {} ],
    [ '192.0.2.0/26', 'NL', [ 'Amsterdam', 'North Holland', 52.3676, 4.9041, 50, 'Europe/Amsterdam' ],
      'Corporate', [ 64502, 'Polder Hosting' ],
      { is_anonymous => 1, is_anonymous_vpn => 1, is_hosting_provider => 1 } ],
    [ '192.0.2.64/26', 'DE', [ 'Frankfurt am Main', 'Hesse', 50.1109, 8.6821, 100, 'Europe/Berlin' ],
      'Corporate', [ 64505, 'Main Relay Association' ],
      { is_anonymous => 1, is_tor_exit_node => 1 } ],
    [ '192.0.2.128/26', 'BR', [ 'São Paulo', 'São Paulo', -23.5505, -46.6333, 500, 'America/Sao_Paulo' ],
      'Satellite', [ 64506, 'Cruzeiro Satélite' ],
      { is_anonymous => 1, is_public_proxy => 1, is_residential_proxy => 1 } ],
    [ '2001:db8::/48', 'DE', [ 'Berlin', 'Berlin', 52.5244, 13.4105, 10, 'Europe/Berlin' ],
      'Cable/DSL', [ 64507, 'Spree Kabel' ], {} ],
);

my @COUNTRY_ONLY = (
    [ '198.51.100.0/25',   'PT' ], [ '198.51.100.128/26', 'ES' ], [ '198.51.100.192/26', 'FR' ],
    [ '203.0.113.0/26',    'AU' ], [ '203.0.113.64/26',   'US' ], [ '192.0.2.0/26',      'NL' ],
    [ '192.0.2.64/26',     'DE' ], [ '192.0.2.128/26',    'BR' ], [ '2001:db8::/32',     'DE' ],
);

sub new_tree {
    my ( $type, $description ) = @_;
    my $tree = MaxMind::DB::Writer::Tree->new(
        ip_version            => 6,
        record_size           => 28,
        database_type         => $type,
        languages             => [ 'en', 'pt' ],
        description           => { en => $description },
        map_key_type_callback => sub { $TYPES{ $_[0] } // die "make_geoip: no type for key $_[0]\n" },
        # The documentation ranges are reserved: keep them, they are the test world.
        remove_reserved_networks => 0,
        # As in MaxMind's databases: ::ffff:a.b.c.d finds a.b.c.d.
        alias_ipv6_to_ipv4 => 1,
    );
    $tree->_set_build_epoch($EPOCH);
    return $tree;
}

sub write_tree {
    my ( $tree, $path ) = @_;
    my $tmp = "$path.tmp$$";
    open my $fh, '>:raw', $tmp or die "make_geoip: $tmp: $!\n";
    $tree->write_tree($fh);
    close $fh or die "make_geoip: $tmp: $!\n";
    rename $tmp, $path or die "make_geoip: rename $tmp: $!\n";
}

sub names {
    my ($en) = @_;
    my %n = ( en => $en );
    $n{pt} = 'Lisboa' if $en eq 'Lisbon';
    $n{pt} = 'Portugal' if $en eq 'Portugal';
    return \%n;
}

sub country_record {
    my ($cc) = @_;
    my ( $id, $name ) = @{ $COUNTRY{$cc} };
    return { geoname_id => $id, iso_code => $cc, names => names($name) };
}

make_path( "$dir/country-only", "$dir/unlabelled" );

my $city = new_tree( 'GeoIP2-City', 'Linkward test world: City' );
my $asn  = new_tree( 'GeoLite2-ASN', 'Linkward test world: ASN' );
my $conn = new_tree( 'GeoIP2-Connection-Type', 'Linkward test world: Connection-Type' );
my $anon = new_tree( 'GeoIP2-Anonymous-IP', 'Linkward test world: Anonymous-IP' );

my $geoname = 9000000;    # made-up ids for cities and subdivisions
for my $w (@WORLD) {
    my ( $net, $cc, $place, $conn_type, $as, $flags ) = @$w;
    my ( undef, undef, $cont ) = @{ $COUNTRY{$cc} };
    my %rec = (
        continent          => { code => $cont, geoname_id => $CONTINENT{$cont}[0], names => names( $CONTINENT{$cont}[1] ) },
        country            => country_record($cc),
        registered_country => country_record($cc),
    );
    if ($place) {
        my ( $cityname, $region, $lat, $lon, $acc, $tz ) = @$place;
        $rec{city}         = { geoname_id => ++$geoname, names => names($cityname) };
        $rec{subdivisions} = [ { geoname_id => ++$geoname, names => names($region) } ];
        $rec{location}     = { latitude => $lat, longitude => $lon, accuracy_radius => $acc, time_zone => $tz };
    }
    $city->insert_network( $net, \%rec );
    $conn->insert_network( $net, { connection_type => $conn_type } ) if defined $conn_type;
    $asn->insert_network( $net, { autonomous_system_number => $as->[0], autonomous_system_organization => $as->[1] } )
        if $as;
    $anon->insert_network( $net, {%$flags} ) if %$flags;
}

write_tree( $city, "$dir/GeoIP2-City.mmdb" );
write_tree( $asn,  "$dir/GeoLite2-ASN.mmdb" );
write_tree( $conn, "$dir/GeoIP2-Connection-Type.mmdb" );
write_tree( $anon, "$dir/GeoIP2-Anonymous-IP.mmdb" );

my $country = new_tree( 'country ipvAll', 'Linkward test world: @ip-location-db country layout' );
$country->insert_network( $_->[0], { country_code => $_->[1] } ) for @COUNTRY_ONLY;
write_tree( $country, "$dir/country-only/geo-whois-asn-country.mmdb" );

my $custom = new_tree( 'Example-Custom-Data', 'Linkward test world: an unlabelled ASN database' );
$custom->insert_network( '198.51.100.0/24',
    { autonomous_system_number => 64511, autonomous_system_organization => 'Unlabelled Networks' } );
write_tree( $custom, "$dir/unlabelled/custom.mmdb" );
