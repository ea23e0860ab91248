/*
 * What the two AES addons (aes_siv.c, ff1.c) share: N-API argument and error helpers, and AES-ECB on the OpenSSL
 * inside the running node (EVP; node exports OpenSSL's symbols for addons, so nothing is linked). Static functions in
 * a header: each addon is one translation unit and compiles what it includes.
 */
#ifndef PSEUDO_AES_ECB_H
#define PSEUDO_AES_ECB_H

#include <node_api.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stddef.h>

#define BLOCK 16

static napi_value throw_type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

/* After a failed N-API call: its own exception when it set one, else ours, so that JavaScript never gets undefined. */
static napi_value throw_error_unless_pending(napi_env env, const char *message) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) napi_throw_error(env, NULL, message);
  return NULL;
}

/* The data and element count of `value` when it is a typed array of type `want`; 0 otherwise. */
static int typed_array(napi_env env, napi_value value, napi_typedarray_type want, void **data, size_t *length) {
  bool is = false;
  if (napi_is_typedarray(env, value, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, value, &type, length, data, NULL, NULL) != napi_ok) return 0;
  return type == want;
}

static const EVP_CIPHER *ecb_for(size_t key_length) {
  switch (key_length) {
    case 16: return EVP_aes_128_ecb();
    case 24: return EVP_aes_192_ecb();
    case 32: return EVP_aes_256_ecb();
    default: return NULL;
  }
}

/* An AES-ECB encryption context without padding; NULL on failure. EVP_CIPHER_CTX_free clears its key schedule. */
static EVP_CIPHER_CTX *ecb_context(const uint8_t *key, size_t key_length) {
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx == NULL) return NULL;
  if (EVP_EncryptInit_ex(ctx, ecb_for(key_length), NULL, key, NULL) != 1 || EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

/* AES-ECB of `blocks` whole blocks; ECB keeps no state between calls, so one context serves every call. */
static int ecb(EVP_CIPHER_CTX *ctx, uint8_t *out, const uint8_t *in, size_t blocks) {
  int written = 0;
  if (blocks == 0) return 1;
  if (blocks > (size_t)INT32_MAX / BLOCK) return 0;  /* OpenSSL takes an int length */
  return EVP_EncryptUpdate(ctx, out, &written, in, (int)(blocks * BLOCK)) == 1 && (size_t)written == blocks * BLOCK;
}

#endif
