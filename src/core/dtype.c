// dtype.c — element types: sizes, names and the IEEE half <-> float conversions (bf16 is
// inline in core.h); the CRC-32C of checkpoints.
#include "steerclear/core.h"

#include <pthread.h>

size_t sc_dtype_size(sc_dtype dt) {
    switch (dt) {
    case SC_DTYPE_F32: return 4;
    case SC_DTYPE_F16: return 2;
    case SC_DTYPE_BF16: return 2;
    case SC_DTYPE_I32: return 4;
    case SC_DTYPE_I64: return 8;
    }
    return 0;
}

const char *sc_dtype_name(sc_dtype dt) {
    switch (dt) {
    case SC_DTYPE_F32: return "F32";
    case SC_DTYPE_F16: return "F16";
    case SC_DTYPE_BF16: return "BF16";
    case SC_DTYPE_I32: return "I32";
    case SC_DTYPE_I64: return "I64";
    }
    return "?";
}

// IEEE half <-> float
float sc_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else { // subnormal: normalise
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) bits = sign | 0x7f800000u | (man << 13);
    else bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    union { uint32_t u; float f; } v; v.u = bits; return v.f;
}

uint16_t sc_f32_to_f16(float f) {
    union { uint32_t u; float f; } v; v.f = f;
    uint32_t x = v.u, sign = (x >> 16) & 0x8000u;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffffu;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00u);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (man >> 13), rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) half++;
    return (uint16_t)half;
}

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), a table of 256 entries built once.
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t sc_crc32c(uint32_t crc, const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    const uint32_t *table = crc_table;
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}
