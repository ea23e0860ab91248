/*
 * HMAC-SHA256 (RFC 2104, FIPS 198-1) over a whole batch of values, on the OpenSSL inside the running node binary.
 *
 * Why native: the platform hashes `prefix || value` (prefix = context || 0x00) under one key for many values.
 * HMAC's inner and outer states after the 64-byte key block (and the inner one after the prefix too) are the same
 * for every value of a batch; computing them once leaves two SHA-256 compressions per short value. node:crypto
 * cannot start a hash from a saved state (Hash.copy() per value measured slower than one createHmac per value),
 * and the house rule keeps SHA-256 itself in OpenSSL (or @noble/ciphers). So this file holds no SHA-256: it
 * saves and copies OpenSSL's SHA256_CTX and calls SHA256_Update / SHA256_Final, which use the CPU's SHA
 * extensions (SHA-NI) where present.
 *
 * Linking: nothing. node exports OpenSSL's symbols for addons; this shared object leaves SHA256_* and
 * OPENSSL_cleanse undefined and they resolve against node at load time (`ldd` shows no libcrypto). The headers
 * are node's own (include/node/openssl), which match the OpenSSL it carries (3.0.x on Node 20 and 22).
 * SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, but still exported and still the only
 * API whose context is a plain struct that can be copied (EVP_MD_CTX_copy is an allocation and a provider call per
 * value): OPENSSL_API_COMPAT below asks for the 1.1.1 API, which declares them without the deprecation warning.
 * Only N-API (NAPI_VERSION 8) is used, so one .node loads on every Node from 16.
 *
 * JavaScript API (one function; api/engine/keyedHash.ts is its only caller):
 *   hmacSha256Batch(key: Uint8Array, prefix: Uint8Array, data: Uint8Array, offsets: Int32Array, out: Uint8Array)
 *   value i is data[offsets[i] .. offsets[i + 1]); out receives 32 bytes per value, in order (out.length must be
 *   32 * (offsets.length - 1)). Misuse throws a TypeError whose message names the argument, never its bytes.
 *
 * The key is read on every call (the states are per batch, on the stack, and cleansed before returning), so a key
 * the keyring has zeroed is the key every later batch uses.
 */
#define NAPI_VERSION 8
#define OPENSSL_API_COMPAT 10101
#include <node_api.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_BYTES 64
#define DIGEST_BYTES 32

/* Throws a TypeError with a fixed message (never caller data) and returns NULL for the caller to return. */
static napi_value type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

/* The bytes of a typed array of the expected element type; `*ok` is 0 when the value is anything else. */
static void typed_bytes(napi_env env, napi_value value, napi_typedarray_type expected, void **data, size_t *length,
                        int *ok) {
  bool is_typed_array = false;
  napi_typedarray_type type;
  size_t element_count = 0;
  *ok = 0;
  *data = NULL;
  *length = 0;
  if (napi_is_typedarray(env, value, &is_typed_array) != napi_ok || !is_typed_array) return;
  if (napi_get_typedarray_info(env, value, &type, &element_count, data, NULL, NULL) != napi_ok) return;
  if (type != expected) return;
  *length = element_count;
  *ok = 1;
}

static napi_value hmac_sha256_batch(napi_env env, napi_callback_info info) {
  static const unsigned char empty[1] = {0};
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return type_error(env, "hmacSha256Batch: bad call");
  if (argc != 5) return type_error(env, "hmacSha256Batch: expects (key, prefix, data, offsets, out)");

  void *key_data, *prefix_data, *value_data, *offset_data, *out_data;
  size_t key_length, prefix_length, data_length, offset_count, out_length;
  int ok;
  typed_bytes(env, argv[0], napi_uint8_array, &key_data, &key_length, &ok);
  if (!ok) return type_error(env, "hmacSha256Batch: key must be a Uint8Array");
  typed_bytes(env, argv[1], napi_uint8_array, &prefix_data, &prefix_length, &ok);
  if (!ok) return type_error(env, "hmacSha256Batch: prefix must be a Uint8Array");
  typed_bytes(env, argv[2], napi_uint8_array, &value_data, &data_length, &ok);
  if (!ok) return type_error(env, "hmacSha256Batch: data must be a Uint8Array");
  typed_bytes(env, argv[3], napi_int32_array, &offset_data, &offset_count, &ok);
  if (!ok) return type_error(env, "hmacSha256Batch: offsets must be an Int32Array");
  typed_bytes(env, argv[4], napi_uint8_array, &out_data, &out_length, &ok);
  if (!ok) return type_error(env, "hmacSha256Batch: out must be a Uint8Array");
  if (offset_count < 1) return type_error(env, "hmacSha256Batch: offsets must hold at least one entry");

  const size_t count = offset_count - 1;
  if (out_length != count * DIGEST_BYTES)
    return type_error(env, "hmacSha256Batch: out must be 32 bytes per value");
  // The offsets are copied and checked in the copy, and the digests are written to a buffer of our own and copied
  // into `out` at the end: `out` may share memory with the offsets or the data (views of one ArrayBuffer), and a
  // digest written there must not move an offset already checked or change a value not yet hashed.
  int32_t *offsets = malloc(offset_count * sizeof(int32_t));
  unsigned char *digests = malloc(count * DIGEST_BYTES + 1);
  if (offsets == NULL || digests == NULL) {
    free(offsets);
    free(digests);
    napi_throw_error(env, NULL, "hmacSha256Batch: out of memory");
    return NULL;
  }
  memcpy(offsets, offset_data, offset_count * sizeof(int32_t));
  // Every value inside data, in order, before anything is hashed: a bad batch writes nothing.
  for (size_t i = 0; i < count; i++) {
    if (offsets[i] < 0 || offsets[i] > offsets[i + 1] || (size_t)offsets[i + 1] > data_length) {
      free(offsets);
      free(digests);
      return type_error(env, "hmacSha256Batch: offsets must be ascending and within data");
    }
  }
  // Zero-length typed arrays may have no backing store: never do pointer arithmetic on NULL.
  const unsigned char *key = key_length ? key_data : empty;
  const unsigned char *prefix = prefix_length ? prefix_data : empty;
  const unsigned char *values = data_length ? value_data : empty;

  // RFC 2104 section 2: K0 is the key padded with zeros to the block, or SHA-256(key) padded when it is longer.
  unsigned char block[BLOCK_BYTES];
  unsigned char digest[DIGEST_BYTES];
  SHA256_CTX inner, outer, work;
  memset(block, 0, sizeof block);
  if (key_length > BLOCK_BYTES) {
    SHA256_Init(&work);
    SHA256_Update(&work, key, key_length);
    SHA256_Final(block, &work);
  } else if (key_length > 0) {
    memcpy(block, key, key_length);
  }
  for (size_t i = 0; i < BLOCK_BYTES; i++) block[i] ^= 0x36;
  SHA256_Init(&inner);
  SHA256_Update(&inner, block, BLOCK_BYTES);
  SHA256_Update(&inner, prefix, prefix_length);
  for (size_t i = 0; i < BLOCK_BYTES; i++) block[i] ^= 0x36 ^ 0x5c;
  SHA256_Init(&outer);
  SHA256_Update(&outer, block, BLOCK_BYTES);

  for (size_t i = 0; i < count; i++) {
    work = inner;
    SHA256_Update(&work, values + offsets[i], (size_t)(offsets[i + 1] - offsets[i]));
    SHA256_Final(digest, &work);
    work = outer;
    SHA256_Update(&work, digest, DIGEST_BYTES);
    SHA256_Final(digests + i * DIGEST_BYTES, &work);
  }
  if (count > 0) memcpy(out_data, digests, count * DIGEST_BYTES);

  // The states are key material: HMAC under them needs no key.
  OPENSSL_cleanse(block, sizeof block);
  OPENSSL_cleanse(digest, sizeof digest);
  OPENSSL_cleanse(&inner, sizeof inner);
  OPENSSL_cleanse(&outer, sizeof outer);
  OPENSSL_cleanse(&work, sizeof work);
  free(offsets);
  free(digests);
  return NULL;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value function;
  if (napi_create_function(env, "hmacSha256Batch", NAPI_AUTO_LENGTH, hmac_sha256_batch, NULL, &function) != napi_ok)
    return NULL;
  if (napi_set_named_property(env, exports, "hmacSha256Batch", function) != napi_ok) return NULL;
  return exports;
}
