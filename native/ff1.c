/*
 * FF1 (NIST SP 800-38G Rev. 1, Algorithms 7 and 8) for a batch of numeral strings of one length, in C.
 *
 * The twin of api/engine/ff1Batch.ts `runNumbers`: the same domain (radix^v <= 2^44, so NUM(A), NUM(B) and every
 * sum fit in 64 bits, [i] || NUM(B) fits Q's last block and S = R, d <= 12 bytes), the same PRF state folded into
 * `base`, and, as there, each Feistel round of a chunk of values is one AES-ECB call on the OpenSSL inside the
 * running node (node exports OpenSSL's symbols for addons; nothing is linked). What moves to C is the per-value work
 * of a round, NUM(S) mod radix^m, the modular add or subtract and writing the next Q, which cost about 60 ns per value
 * and round in JavaScript (npm run bench:engine, FF1 16 digits at about 1 M values/s).
 *
 * One function, numbers(key, params, base, digits, offsets, indexes, out):
 *   key       the FF1 AES key, 16, 24 or 32 bytes
 *   params    Int32Array [radix, u, v, decrypt]: radix 2..65535, u = floor(n / 2), v = n - u, decrypt 0 or 1
 *   base      16 bytes: Q's last block with its per-value bytes zero and the CBC-MAC state Y0 of P || Q's constant
 *             blocks XORed in (ff1Batch.ts `LengthPlan.base`)
 *   digits    Uint16Array of every value's numerals; value i is digits[offsets[i] .. offsets[i + 1])
 *   offsets   Int32Array
 *   indexes   Int32Array: the values to transform, each of length u + v
 *   out       Uint16Array as long as digits: each transformed value is written at its own offsets
 * Every input is read and checked into memory of its own before anything is written, so `out` sharing memory with
 * an input cannot change what is read. A digit not below radix is refused (the callers check them first).
 *
 * Only N-API, so one build loads on Node 20 and 22. test/engine/ff1Batch.test.ts checks it against the JavaScript
 * path and @noble/ciphers' FF1; npm run verify:ff1 on a million random values per alphabet.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aes_ecb.h"

#define ROUNDS 10
/* Values per chunk: a chunk's blocks and halves stay in the CPU's caches through its ten rounds. */
#define CHUNK 1024
/* Largest radix^v: ff1Batch.ts NUMBER_DOMAIN_LIMIT. */
#define DOMAIN_LIMIT ((uint64_t)1 << 44)

/* radix^exponent, or 0 when it exceeds DOMAIN_LIMIT. */
static uint64_t power(uint64_t radix, int32_t exponent) {
  uint64_t result = 1;
  for (int32_t i = 0; i < exponent; i++) {
    result *= radix;  /* result <= 2^44 and radix < 2^16 before this: no overflow */
    if (result > DOMAIN_LIMIT) return 0;
  }
  return result;
}

/* Writes Q's per-value bytes, [round]1 || [x]b, over base into `block`. */
static void write_q(uint8_t block[BLOCK], const uint8_t base[BLOCK], uint64_t x, unsigned round, unsigned b) {
  memcpy(block, base, BLOCK);
  block[BLOCK - b - 1] ^= (uint8_t)round;
  for (unsigned j = 0; j < b; j++, x >>= 8) block[BLOCK - 1 - j] ^= (uint8_t)(x & 0xff);
}

typedef struct {
  uint64_t radix, pow_u, pow_v;
  unsigned u, v, b, d;
  int decrypt;
} Plan;

/* Ten rounds over `n` values whose halves are left[0..n), right[0..n). Returns 0 on an OpenSSL failure. */
static int feistel(EVP_CIPHER_CTX *ctx, const Plan *p, const uint8_t base[BLOCK], uint64_t *left, uint64_t *right,
                   size_t n, uint8_t *in, uint8_t *r) {
  for (unsigned step = 0; step < ROUNDS; step++) {
    unsigned i = p->decrypt ? ROUNDS - 1 - step : step;
    uint64_t modulus = i % 2 == 0 ? p->pow_u : p->pow_v;
    /* Encrypt: Q carries NUM(B), c = (NUM(A) + y) mod radix^m, then A = B, B = c.
       Decrypt: Q carries NUM(A), c = (NUM(B) - y) mod radix^m, then B = A, A = c. */
    const uint64_t *q = p->decrypt ? left : right;
    for (size_t k = 0; k < n; k++) write_q(in + k * BLOCK, base, q[k], i, p->b);
    if (!ecb(ctx, r, in, n)) return 0;
    for (size_t k = 0; k < n; k++) {
      const uint8_t *s = r + k * BLOCK;
      uint64_t y;
      if (p->d == 8) {
        uint64_t word = 0;
        for (unsigned j = 0; j < 8; j++) word = (word << 8) | s[j];
        y = word % modulus;
      } else {  /* d == 12: NUM(S) below 2^96 */
        unsigned __int128 word = 0;
        for (unsigned j = 0; j < 12; j++) word = (word << 8) | s[j];
        y = (uint64_t)(word % modulus);
      }
      if (p->decrypt) {
        uint64_t c = right[k] >= y ? right[k] - y : right[k] + modulus - y;
        right[k] = left[k];
        left[k] = c;
      } else {
        uint64_t c = left[k] + y;  /* both below 2^44 */
        if (c >= modulus) c -= modulus;
        left[k] = right[k];
        right[k] = c;
      }
    }
  }
  return 1;
}

static napi_value numbers(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 7) {
    return throw_type_error(env, "numbers() takes 7 arguments");
  }
  void *key, *params_raw, *base_raw, *digits_raw, *offsets_raw, *indexes_raw, *out_raw;
  size_t key_length, params_length, base_length, digits_length, offsets_length, indexes_length, out_length;
  if (!typed_array(env, argv[0], napi_uint8_array, &key, &key_length) ||
      !typed_array(env, argv[1], napi_int32_array, &params_raw, &params_length) ||
      !typed_array(env, argv[2], napi_uint8_array, &base_raw, &base_length) ||
      !typed_array(env, argv[3], napi_uint16_array, &digits_raw, &digits_length) ||
      !typed_array(env, argv[4], napi_int32_array, &offsets_raw, &offsets_length) ||
      !typed_array(env, argv[5], napi_int32_array, &indexes_raw, &indexes_length) ||
      !typed_array(env, argv[6], napi_uint16_array, &out_raw, &out_length)) {
    return throw_type_error(env, "numbers(): argument types are Uint8Array, Int32Array, Uint8Array, Uint16Array, Int32Array x2, Uint16Array");
  }
  if (ecb_for(key_length) == NULL) return throw_type_error(env, "numbers(): the key is 16, 24 or 32 bytes");
  if (params_length != 4 || base_length != BLOCK) return throw_type_error(env, "numbers(): params are 4 numbers, base is 16 bytes");
  if (out_length != digits_length) return throw_type_error(env, "numbers(): out must be as long as digits");
  const int32_t *params = params_raw;
  Plan plan;
  if (params[0] < 2 || params[0] > 65535 || params[1] < 1 || params[2] < params[1] || params[2] - params[1] > 1) {
    return throw_type_error(env, "numbers(): radix 2..65535, 1 <= u, v = u or u + 1");
  }
  plan.radix = (uint64_t)params[0];
  plan.u = (unsigned)params[1];
  plan.v = (unsigned)params[2];
  plan.decrypt = params[3] != 0;
  plan.pow_u = power(plan.radix, params[1]);
  plan.pow_v = power(plan.radix, params[2]);
  if (plan.pow_u == 0 || plan.pow_v == 0) return throw_type_error(env, "numbers(): radix^v must not exceed 2^44");
  /* b = ceil(bitlength(radix^v - 1) / 8), d = 4 * ceil(b / 4) + 4 (SP 800-38G steps 3 and 4). */
  unsigned bits = 0;
  for (uint64_t x = plan.pow_v - 1; x != 0; x >>= 1) bits++;
  plan.b = (bits + 7) / 8;
  plan.d = 4 * ((plan.b + 3) / 4) + 4;
  size_t n = plan.u + plan.v;
  size_t count = indexes_length;
  size_t values = offsets_length == 0 ? 0 : offsets_length - 1;
  /* Every input read and checked before anything is written: halves and where each value goes. */
  uint64_t *left = malloc((count ? count : 1) * sizeof(uint64_t));
  uint64_t *right = malloc((count ? count : 1) * sizeof(uint64_t));
  size_t *starts = malloc((count ? count : 1) * sizeof(size_t));
  uint8_t *in = malloc(CHUNK * BLOCK);
  uint8_t *r = malloc(CHUNK * BLOCK);
  uint8_t base[BLOCK];
  memcpy(base, base_raw, BLOCK);
  int ok = left != NULL && right != NULL && starts != NULL && in != NULL && r != NULL;
  const char *problem = ok ? NULL : "numbers(): out of memory";
  int caller_mistake = 0;  /* a TypeError (the arguments), else an Error (memory, OpenSSL) */
  const int32_t *offsets = offsets_raw, *indexes = indexes_raw;
  const uint16_t *digits = digits_raw;
  for (size_t k = 0; ok && k < count; k++) {
    int32_t index = indexes[k];
    if (index < 0 || (size_t)index >= values) {
      ok = 0;
      caller_mistake = 1;
      problem = "numbers(): an index out of range";
      break;
    }
    int32_t start = offsets[index], end = offsets[index + 1];
    if (start < 0 || end < start || (size_t)(end - start) != n || (size_t)end > digits_length) {
      ok = 0;
      caller_mistake = 1;
      problem = "numbers(): a value's offsets out of range or not of length u + v";
      break;
    }
    uint64_t a = 0, b = 0;
    int digit_ok = 1;
    for (size_t j = 0; j < plan.u; j++) {
      digit_ok &= digits[(size_t)start + j] < plan.radix;
      a = a * plan.radix + digits[(size_t)start + j];
    }
    for (size_t j = plan.u; j < n; j++) {
      digit_ok &= digits[(size_t)start + j] < plan.radix;
      b = b * plan.radix + digits[(size_t)start + j];
    }
    if (!digit_ok) {  /* the callers check digits; a wrong one would give an answer that does not decrypt */
      ok = 0;
      caller_mistake = 1;
      problem = "numbers(): a digit not below radix";
      break;
    }
    left[k] = a;
    right[k] = b;
    starts[k] = (size_t)start;
  }
  EVP_CIPHER_CTX *ctx = NULL;
  if (ok) {
    ctx = ecb_context(key, key_length);
    ok = ctx != NULL;
    if (!ok) problem = "FF1 on OpenSSL failed";
  }
  for (size_t first = 0; ok && first < count; first += CHUNK) {
    size_t chunk = count - first < CHUNK ? count - first : CHUNK;
    ok = feistel(ctx, &plan, base, left + first, right + first, chunk, in, r);
    if (!ok) problem = "FF1 on OpenSSL failed";
  }
  if (ok) {
    uint16_t *out = out_raw;
    for (size_t k = 0; k < count; k++) {
      uint64_t a = left[k], b = right[k];
      for (size_t j = plan.u; j-- > 0; a /= plan.radix) out[starts[k] + j] = (uint16_t)(a % plan.radix);
      for (size_t j = n; j-- > plan.u; b /= plan.radix) out[starts[k] + j] = (uint16_t)(b % plan.radix);
    }
  }
  /* The halves are the values, and the blocks derive from them and the key: wiped before they are freed. */
  EVP_CIPHER_CTX_free(ctx);
  if (left != NULL) OPENSSL_cleanse(left, (count ? count : 1) * sizeof(uint64_t));
  if (right != NULL) OPENSSL_cleanse(right, (count ? count : 1) * sizeof(uint64_t));
  if (in != NULL) OPENSSL_cleanse(in, CHUNK * BLOCK);
  if (r != NULL) OPENSSL_cleanse(r, CHUNK * BLOCK);
  OPENSSL_cleanse(base, BLOCK);
  free(left);
  free(right);
  free(starts);
  free(in);
  free(r);
  if (!ok) return caller_mistake ? throw_type_error(env, problem) : throw_error_unless_pending(env, problem);
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value fn;
  if (napi_create_function(env, "numbers", NAPI_AUTO_LENGTH, numbers, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "numbers", fn) != napi_ok) return NULL;
  return exports;
}
