/*
 * Deterministic AES-SIV pseudonyms (RFC 5297) for a whole batch of values, written straight as pseudonym text.
 *
 * The same construction as api/engine/siv.ts `encryptBatch` followed by pseudonymFormat.ts `formatPseudonymsPacked`,
 * with the per-value work (building S2V's blocks, the CTR counters and XOR, base64url) in C instead of JavaScript,
 * where it cost about three quarters of the path's CPU (npm run bench:stages). AES itself comes from the OpenSSL
 * inside the running node binary (EVP, AES-ECB, AES-NI where the CPU has it): node exports OpenSSL's symbols for
 * addons, so this file links to no libcrypto of its own and uses the same OpenSSL as node:crypto. As in siv.ts,
 * every CMAC round of a chunk of values and the chunk's whole keystream are one AES-ECB call.
 *
 * One function, pseudonyms(macKey, ctrKey, headerState, data, offsets, prefix) -> { data, offsets }:
 *   macKey, ctrKey   the two halves of the AES-SIV key (16, 24 or 32 bytes each, the same length)
 *   headerState      S2V's state after the associated data (the context), 16 bytes (siv.ts `headerState`)
 *   data, offsets    the values' UTF-8 bytes, value i at data[offsets[i] .. offsets[i + 1])
 *   prefix           the pseudonym's text before the payload, e.g. "s1."
 * The answer is a new Buffer holding prefix + base64url(V || C) per value, unpadded, concatenated, and a new
 * Int32Array of its count + 1 offsets. The offsets are copied before they are checked and nothing the caller passed
 * is written, so arguments sharing memory (views of one ArrayBuffer) cannot move a checked offset.
 *
 * Only N-API (no V8 or libuv API), so one build loads on Node 20 and 22. Bit-for-bit equality with siv.ts and with
 * @noble/ciphers' aessiv is tested in test/engine/sivText.test.ts and on a million random inputs by npm run verify:siv.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aes_ecb.h"

/* Values per chunk: the chunk's state, blocks and keystream stay in the CPU's caches. */
#define CHUNK 512

static const char BASE64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* dbl() of RFC 5297 section 2.3: multiplication by x in GF(2^128), big-endian. */
static void dbl(uint8_t out[BLOCK], const uint8_t in[BLOCK]) {
  uint8_t carry = 0;
  for (int i = BLOCK - 1; i >= 0; i--) {
    uint8_t b = in[i];
    out[i] = (uint8_t)((b << 1) | carry);
    carry = b >> 7;
  }
  if (in[0] & 0x80) out[BLOCK - 1] ^= 0x87;
}

static size_t base64url_length(size_t bytes) { return (bytes * 4 + 2) / 3; }

static uint8_t *base64url(uint8_t *out, const uint8_t *in, size_t length) {
  size_t i = 0;
  for (; i + 3 <= length; i += 3) {
    uint32_t n = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
    out[0] = (uint8_t)BASE64URL[n >> 18];
    out[1] = (uint8_t)BASE64URL[(n >> 12) & 63];
    out[2] = (uint8_t)BASE64URL[(n >> 6) & 63];
    out[3] = (uint8_t)BASE64URL[n & 63];
    out += 4;
  }
  if (length - i == 2) {
    uint32_t n = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
    out[0] = (uint8_t)BASE64URL[n >> 18];
    out[1] = (uint8_t)BASE64URL[(n >> 12) & 63];
    out[2] = (uint8_t)BASE64URL[(n >> 6) & 63];
    out += 3;
  } else if (length - i == 1) {
    uint32_t n = (uint32_t)in[i] << 16;
    out[0] = (uint8_t)BASE64URL[n >> 18];
    out[1] = (uint8_t)BASE64URL[(n >> 12) & 63];
    out += 2;
  }
  return out;
}

typedef struct {
  EVP_CIPHER_CTX *mac;
  EVP_CIPHER_CTX *ctr;
  uint8_t subkey1[BLOCK];   /* CMAC K1 = dbl(AES(K, 0)) */
  uint8_t subkey2[BLOCK];   /* CMAC K2 = dbl(K1) */
  uint8_t state[BLOCK];     /* D: S2V after the associated data */
  uint8_t short_mask[BLOCK];/* dbl(D) xor K1: a value under 16 bytes is one complete CMAC block */
} Siv;

/*
 * Block `round` of the CMAC input for one value (RFC 5297 section 2.4 for S2V's last step, RFC 4493 section 2.4 for
 * CMAC's last block): P xorend D when |P| >= 16, else dbl(D) xor pad(P); the last block padded and xored with K1
 * (complete) or K2 (partial).
 */
static void cmac_block(const Siv *siv, uint8_t out[BLOCK], const uint8_t *p, size_t length, size_t round, size_t blocks) {
  if (length < BLOCK) {
    for (size_t b = 0; b < length; b++) out[b] = p[b] ^ siv->short_mask[b];
    out[length] = 0x80 ^ siv->short_mask[length];
    for (size_t b = length + 1; b < BLOCK; b++) out[b] = siv->short_mask[b];
    return;
  }
  size_t start = round * BLOCK;
  size_t end = start + BLOCK < length ? start + BLOCK : length;
  size_t xor_from = length - BLOCK;
  for (size_t b = start; b < end; b++) out[b - start] = p[b] ^ (b >= xor_from ? siv->state[b - xor_from] : 0);
  if (round == blocks - 1) {
    size_t filled = end - start;
    if (filled == BLOCK) {
      for (size_t b = 0; b < BLOCK; b++) out[b] ^= siv->subkey1[b];
    } else {
      out[filled] = 0x80;
      for (size_t b = filled + 1; b < BLOCK; b++) out[b] = 0;
      for (size_t b = 0; b < BLOCK; b++) out[b] ^= siv->subkey2[b];
    }
  }
}

/* Chunk work areas, on the heap once per call. */
typedef struct {
  uint8_t x[CHUNK * BLOCK];     /* CMAC state per value of the chunk, then V */
  uint8_t in[CHUNK * BLOCK];    /* this round's input blocks of the values still running */
  uint8_t out[CHUNK * BLOCK];
  uint32_t active[CHUNK];
  uint8_t *counters;            /* the chunk's CTR counter blocks, then its keystream */
  uint8_t *keystream;
  size_t capacity;              /* blocks the two above hold */
  uint8_t *payload;             /* one value's V || C before base64url */
} Work;

/* Room for `blocks` counter and keystream blocks. New areas rather than realloc: the old keystream is wiped before it
   is freed, never left in freed memory. */
static int grow(Work *w, size_t blocks) {
  if (blocks <= w->capacity) return 1;
  size_t capacity = blocks * 2;
  uint8_t *counters = malloc(capacity * BLOCK);
  uint8_t *keystream = malloc(capacity * BLOCK);
  if (counters == NULL || keystream == NULL) {
    free(counters);
    free(keystream);
    return 0;
  }
  if (w->counters != NULL) OPENSSL_cleanse(w->counters, w->capacity * BLOCK);
  if (w->keystream != NULL) OPENSSL_cleanse(w->keystream, w->capacity * BLOCK);
  free(w->counters);
  free(w->keystream);
  w->counters = counters;
  w->keystream = keystream;
  w->capacity = capacity;
  return 1;
}

/* Pseudonyms of values [first, first + n) into text at out (offsets already known). Returns 0 on an OpenSSL failure. */
static int chunk(const Siv *siv, Work *w, const uint8_t *data, const int32_t *offsets, size_t first, size_t n,
                 const uint8_t *prefix, size_t prefix_length, uint8_t *text, const int32_t *out_offsets) {
  size_t max_blocks = 1, ctr_blocks = 0;
  for (size_t i = 0; i < n; i++) {
    size_t length = (size_t)(offsets[first + i + 1] - offsets[first + i]);
    size_t blocks = length == 0 ? 1 : (length + BLOCK - 1) / BLOCK;
    if (blocks > max_blocks) max_blocks = blocks;
    ctr_blocks += (length + BLOCK - 1) / BLOCK;
  }
  memset(w->x, 0, n * BLOCK);
  for (size_t round = 0; round < max_blocks; round++) {
    size_t active = 0;
    for (size_t i = 0; i < n; i++) {
      const uint8_t *p = data + offsets[first + i];
      size_t length = (size_t)(offsets[first + i + 1] - offsets[first + i]);
      size_t blocks = length == 0 ? 1 : (length + BLOCK - 1) / BLOCK;
      if (round >= blocks) continue;
      uint8_t *block = w->in + active * BLOCK;
      cmac_block(siv, block, p, length, round, blocks);
      const uint8_t *x = w->x + i * BLOCK;
      for (size_t b = 0; b < BLOCK; b++) block[b] ^= x[b];
      w->active[active++] = (uint32_t)i;
    }
    if (!ecb(siv->mac, w->out, w->in, active)) return 0;
    for (size_t j = 0; j < active; j++) memcpy(w->x + (size_t)w->active[j] * BLOCK, w->out + j * BLOCK, BLOCK);
  }
  /* CTR (RFC 5297 section 2.5): Q = V with bits 63 and 31 cleared; block j of the keystream is AES(Q + j). Clearing
     bit 31 means adding j < 2^31 never carries out of the low 32 bits. */
  if (!grow(w, ctr_blocks)) return 0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    size_t length = (size_t)(offsets[first + i + 1] - offsets[first + i]);
    size_t blocks = (length + BLOCK - 1) / BLOCK;
    const uint8_t *v = w->x + i * BLOCK;
    uint32_t low = ((uint32_t)(v[12] & 0x7f) << 24) | ((uint32_t)v[13] << 16) | ((uint32_t)v[14] << 8) | v[15];
    for (size_t j = 0; j < blocks; j++, at++) {
      uint8_t *q = w->counters + at * BLOCK;
      memcpy(q, v, 12);
      q[8] &= 0x7f;
      uint32_t c = low + (uint32_t)j;
      q[12] = (uint8_t)(c >> 24);
      q[13] = (uint8_t)(c >> 16);
      q[14] = (uint8_t)(c >> 8);
      q[15] = (uint8_t)c;
    }
  }
  if (!ecb(siv->ctr, w->keystream, w->counters, ctr_blocks)) return 0;
  at = 0;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = data + offsets[first + i];
    size_t length = (size_t)(offsets[first + i + 1] - offsets[first + i]);
    uint8_t *payload = w->payload;
    memcpy(payload, w->x + i * BLOCK, BLOCK);
    if (length > 0) {  /* an empty value has no keystream (and a chunk of them none at all: no arithmetic on NULL) */
      const uint8_t *ks = w->keystream + at * BLOCK;
      for (size_t b = 0; b < length; b++) payload[BLOCK + b] = p[b] ^ ks[b];
      at += (length + BLOCK - 1) / BLOCK;
    }
    uint8_t *t = text + out_offsets[first + i];
    memcpy(t, prefix, prefix_length);
    base64url(t + prefix_length, payload, BLOCK + length);
  }
  return 1;
}

static napi_value pseudonyms(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6) {
    return throw_type_error(env, "pseudonyms() takes 6 arguments");
  }
  void *mac_key, *ctr_key, *state, *data, *offsets_raw, *prefix;
  size_t mac_length, ctr_length, state_length, data_length, offsets_length, prefix_length;
  if (!typed_array(env, argv[0], napi_uint8_array, &mac_key, &mac_length) ||
      !typed_array(env, argv[1], napi_uint8_array, &ctr_key, &ctr_length) ||
      !typed_array(env, argv[2], napi_uint8_array, &state, &state_length) ||
      !typed_array(env, argv[3], napi_uint8_array, &data, &data_length) ||
      !typed_array(env, argv[4], napi_int32_array, &offsets_raw, &offsets_length) ||
      !typed_array(env, argv[5], napi_uint8_array, &prefix, &prefix_length)) {
    return throw_type_error(env, "pseudonyms(): argument types are Uint8Array x4, Int32Array, Uint8Array");
  }
  if (ecb_for(mac_length) == NULL || ctr_length != mac_length) return throw_type_error(env, "pseudonyms(): keys of 16, 24 or 32 bytes each");
  if (state_length != BLOCK) return throw_type_error(env, "pseudonyms(): the header state is 16 bytes");
  if (offsets_length < 1) return throw_type_error(env, "pseudonyms(): offsets need count + 1 slots");
  size_t count = offsets_length - 1;
  if (count > (size_t)INT32_MAX - 1) return throw_type_error(env, "pseudonyms(): too many values");
  /* The answer's offsets, a new Int32Array nobody else holds. */
  napi_value offsets_buffer, offsets_array;
  void *out_offsets_raw;
  if (napi_create_arraybuffer(env, (count + 1) * sizeof(int32_t), &out_offsets_raw, &offsets_buffer) != napi_ok ||
      napi_create_typedarray(env, napi_int32_array, count + 1, offsets_buffer, 0, &offsets_array) != napi_ok) {
    return throw_error_unless_pending(env, "pseudonyms(): out of memory");
  }
  int32_t *out_offsets = out_offsets_raw;
  /* The input offsets copied into the answer's array first, checked and read there only: they must rise within data. */
  memcpy(out_offsets, offsets_raw, (count + 1) * sizeof(int32_t));
  const int32_t *offsets = out_offsets;
  if (offsets[0] < 0) return throw_type_error(env, "pseudonyms(): offsets out of range");
  size_t max_length = 0;
  uint64_t total = 0;
  for (size_t i = 0; i < count; i++) {
    if (offsets[i + 1] < offsets[i] || (size_t)offsets[i + 1] > data_length) return throw_type_error(env, "pseudonyms(): offsets out of range");
    size_t length = (size_t)(offsets[i + 1] - offsets[i]);
    if (length > max_length) max_length = length;
    total += prefix_length + base64url_length(BLOCK + length);
  }
  if (total > INT32_MAX) return throw_type_error(env, "pseudonyms(): the answer would exceed 2 GiB");

  napi_value text_buffer;
  void *text;
  if (napi_create_buffer(env, (size_t)total, &text, &text_buffer) != napi_ok) {
    return throw_error_unless_pending(env, "pseudonyms(): out of memory");
  }
  /* The input offsets, private: the answer's array is rewritten with the text offsets below, value by value. */
  int32_t *input_offsets = malloc((count + 1) * sizeof(int32_t));
  if (input_offsets == NULL) return throw_error_unless_pending(env, "pseudonyms(): out of memory");
  memcpy(input_offsets, offsets, (count + 1) * sizeof(int32_t));
  offsets = input_offsets;
  uint64_t written = 0;
  for (size_t i = 0; i < count; i++) {
    out_offsets[i] = (int32_t)written;
    written += prefix_length + base64url_length(BLOCK + (size_t)(offsets[i + 1] - offsets[i]));
  }
  out_offsets[count] = (int32_t)written;

  Siv siv;
  memset(&siv, 0, sizeof siv);
  Work *w = calloc(1, sizeof(Work));
  int ok = w != NULL && (w->payload = malloc(BLOCK + max_length + 1)) != NULL;
  if (ok) {
    siv.mac = ecb_context(mac_key, mac_length);
    siv.ctr = ecb_context(ctr_key, ctr_length);
    ok = siv.mac != NULL && siv.ctr != NULL;
  }
  if (ok) {
    uint8_t zero[BLOCK] = {0}, l[BLOCK];
    ok = ecb(siv.mac, l, zero, 1);
    dbl(siv.subkey1, l);
    dbl(siv.subkey2, siv.subkey1);
    OPENSSL_cleanse(l, BLOCK);
    memcpy(siv.state, state, BLOCK);
    dbl(siv.short_mask, siv.state);
    for (size_t b = 0; b < BLOCK; b++) siv.short_mask[b] ^= siv.subkey1[b];
  }
  for (size_t first = 0; ok && first < count; first += CHUNK) {
    size_t n = count - first < CHUNK ? count - first : CHUNK;
    ok = chunk(&siv, w, data, offsets, first, n, prefix, prefix_length, text, out_offsets);
  }
  /* Key-derived state and the plaintext-bearing work areas are wiped; EVP_CIPHER_CTX_free wipes the key schedules. */
  EVP_CIPHER_CTX_free(siv.mac);
  EVP_CIPHER_CTX_free(siv.ctr);
  OPENSSL_cleanse(&siv, sizeof siv);
  if (w != NULL) {
    if (w->payload != NULL) OPENSSL_cleanse(w->payload, BLOCK + max_length + 1);
    if (w->counters != NULL) OPENSSL_cleanse(w->counters, w->capacity * BLOCK);
    if (w->keystream != NULL) OPENSSL_cleanse(w->keystream, w->capacity * BLOCK);
    free(w->payload);
    free(w->counters);
    free(w->keystream);
    OPENSSL_cleanse(w, sizeof(Work));
    free(w);
  }
  free(input_offsets);
  if (!ok) return throw_error_unless_pending(env, "AES-SIV on OpenSSL failed");
  napi_value result;
  if (napi_create_object(env, &result) != napi_ok || napi_set_named_property(env, result, "data", text_buffer) != napi_ok ||
      napi_set_named_property(env, result, "offsets", offsets_array) != napi_ok) {
    return throw_error_unless_pending(env, "pseudonyms(): out of memory");
  }
  return result;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value fn;
  if (napi_create_function(env, "pseudonyms", NAPI_AUTO_LENGTH, pseudonyms, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "pseudonyms", fn) != napi_ok) return NULL;
  return exports;
}
