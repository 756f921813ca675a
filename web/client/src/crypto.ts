// The session protocol's cryptography (docs/PROTOCOL.md sections 1.1 and 7.1):
// X25519, HKDF-SHA256, SHA-256 and ChaCha20-Poly1305, all from the audited
// @noble packages, so a browser needs nothing beyond JavaScript.

import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { Writer, utf8 } from "./bytes.js";

export const KEY_LEN = 32;
export const TAG_LEN = 16;

export interface KeyPair {
  secret: Uint8Array;
  public: Uint8Array;
}

/** A fresh X25519 key pair (from the platform's CSPRNG), or one from a given secret (tests). */
export function keyPair(secret?: Uint8Array): KeyPair {
  const chosen = secret ?? x25519.utils.randomSecretKey();
  return { secret: chosen, public: x25519.getPublicKey(chosen) };
}

/** X25519, refusing an all-zero (non-contributory) result as the protocol requires. */
export function diffieHellman(secret: Uint8Array, peerPublic: Uint8Array): Uint8Array {
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(secret, peerPublic);
  } catch {
    throw new Error("the server's key is not a valid X25519 public key");
  }
  if (shared.every((b) => b === 0)) throw new Error("the server's key is a low-order point");
  return shared;
}

/** SHA-256("hearth handshake v2" || for each part: u32 length || bytes). */
export function transcriptHash(parts: Uint8Array[]): Uint8Array {
  const w = new Writer(256).bytes(utf8("hearth handshake v2"));
  for (const part of parts) w.u32(part.length).bytes(part);
  return sha256(w.finish());
}

export interface SessionKeys {
  clientToServer: Uint8Array;
  serverToClient: Uint8Array;
  confirm: Uint8Array;
}

export function deriveKeys(
  ephemeralDh: Uint8Array,
  staticDh: Uint8Array,
  attachSecret: Uint8Array | undefined,
  transcript: Uint8Array,
): SessionKeys {
  const ikm = attachSecret
    ? new Writer(96).bytes(ephemeralDh).bytes(staticDh).bytes(attachSecret).finish()
    : new Writer(64).bytes(ephemeralDh).bytes(staticDh).finish();
  const expand = (label: string) => hkdf(sha256, ikm, transcript, utf8(label), KEY_LEN);
  return {
    clientToServer: expand("hearth c2s"),
    serverToClient: expand("hearth s2c"),
    confirm: expand("hearth confirm"),
  };
}

/** 4 zero bytes, then the packet number big-endian. */
export function nonceFor(counter: bigint): Uint8Array {
  return new Writer(12).u32(0).u64(counter).finish();
}

export function seal(key: Uint8Array, counter: bigint, plaintext: Uint8Array, aad?: Uint8Array): Uint8Array {
  return chacha20poly1305(key, nonceFor(counter), aad).encrypt(plaintext);
}

/** The plaintext, or `undefined` if the packet is not authentic. */
export function open(
  key: Uint8Array,
  counter: bigint,
  sealed: Uint8Array,
  aad?: Uint8Array,
): Uint8Array | undefined {
  if (sealed.length < TAG_LEN) return undefined;
  try {
    return chacha20poly1305(key, nonceFor(counter), aad).decrypt(sealed);
  } catch {
    return undefined;
  }
}

/**
 * Sealing of one stream: each direction counts its packets from 0, and a
 * stream neither loses nor reorders, so a packet that fails to open ends
 * the stream (tampering, replay or truncation).
 */
export class StreamCrypto {
  private sent = 0n;
  private received = 0n;

  constructor(
    private readonly sendKey: Uint8Array,
    private readonly receiveKey: Uint8Array,
  ) {}

  static forClient(keys: SessionKeys): StreamCrypto {
    return new StreamCrypto(keys.clientToServer, keys.serverToClient);
  }

  /** The server's half, for tests that play the server. */
  static forServer(keys: SessionKeys): StreamCrypto {
    return new StreamCrypto(keys.serverToClient, keys.clientToServer);
  }

  seal(plaintext: Uint8Array): Uint8Array {
    const sealed = seal(this.sendKey, this.sent, plaintext);
    this.sent += 1n;
    return sealed;
  }

  open(packet: Uint8Array): Uint8Array | undefined {
    const plaintext = open(this.receiveKey, this.received, packet);
    if (plaintext) this.received += 1n;
    return plaintext;
  }
}
