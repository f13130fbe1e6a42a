// The messages a key signs, the same bytes as src/common/proof.h (its
// comment is the definition; docs/api.md says what each is for):
//
//   domain 0x00 text 0x00 raw
//
// text is an id's base64url text (or the QR payload's origin), 1..ID_MAX
// (ORIGIN_MAX) UTF-8 bytes without control characters; raw the bytes after
// base64url decoding: 32 (the QR: ref, 16, then fingerprint, 32).
// tests/vectors/proof.json holds this module and proof.c to the same bytes.
// No DOM and no WebCrypto here: node's tests import it as it is (.mjs: an ES
// module to every Node, without a package.json saying so).

export const LINK = 'linkward-link-v1'; // the companion completes a link: request id, nonce
export const REFRESH = 'linkward-refresh-v1'; // a device refreshes its credential: device id, challenge
export const ACCOUNT = 'linkward-account-v1'; // the primary vouches for a key: account id, companion key
export const QR = 'linkward-qr-v1'; // the server signs a QR payload: origin, ref and fingerprint

export const ID_MAX = 128;
export const ORIGIN_MAX = 255;
export const RAW_LEN = 32;
export const QR_RAW_LEN = 48;

const KINDS = new Map([
  [LINK, { textMax: ID_MAX, rawLen: RAW_LEN }],
  [REFRESH, { textMax: ID_MAX, rawLen: RAW_LEN }],
  [ACCOUNT, { textMax: ID_MAX, rawLen: RAW_LEN }],
  [QR, { textMax: ORIGIN_MAX, rawLen: QR_RAW_LEN }],
]);

/** Why buildProof refused: code 'too_big' (LW_ETOOBIG in C) or 'invalid' (LW_EINVAL). */
export class ProofError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'ProofError';
    this.code = code;
  }
}

/**
 * The message of domain (one of the constants above) over text and raw (a
 * Uint8Array of the domain's length), as a new Uint8Array. Throws a
 * ProofError where lw_proof_build refuses: never a truncated message.
 */
export function buildProof(domain, text, raw) {
  const kind = KINDS.get(domain);
  if (!kind) throw new ProofError('invalid', `unknown signed message domain: ${domain}`);
  if (typeof text !== 'string') throw new ProofError('invalid', 'the text of a signed message must be a string');
  if (!(raw instanceof Uint8Array) || raw.length !== kind.rawLen) {
    throw new ProofError('invalid', `${domain} signs ${kind.rawLen} raw bytes`);
  }
  const enc = new TextEncoder();
  const t = enc.encode(text);
  if (t.length > kind.textMax) throw new ProofError('too_big', `${domain}: text over ${kind.textMax} bytes`);
  if (t.length === 0) throw new ProofError('invalid', `${domain}: empty text`);
  if (t.some((c) => c < 0x20 || c === 0x7f)) throw new ProofError('invalid', `${domain}: control character in text`);
  const d = enc.encode(domain);
  const msg = new Uint8Array(d.length + 1 + t.length + 1 + raw.length);
  msg.set(d, 0);
  msg.set(t, d.length + 1);
  msg.set(raw, d.length + 1 + t.length + 1);
  return msg;
}
