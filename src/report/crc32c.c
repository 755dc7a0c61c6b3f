/* crc32c.c: CRC-32C (Castagnoli) and TFRecord's masked CRC. Not a fast CRC: records
 * here are a few hundred bytes, so a 16-entry nibble table is plenty. */
#include <stddef.h>
#include <stdint.h>

#include "cpt/metrics.h"

/* crc32c_nibble[i] = i fed through 4 steps of the reflected shift register with
 * polynomial 0x82F63B78 (c = (c >> 1) ^ (c & 1 ? 0x82F63B78 : 0)). */
static const uint32_t crc32c_nibble[16] = {
    0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3,
    0x61c69362, 0x7198540d, 0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9,
    0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75,
};

uint32_t cpt_crc32c(const void *data, size_t n, uint32_t crc) {
    const uint8_t *p = data;
    uint32_t c = ~crc;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        c = (c >> 4) ^ crc32c_nibble[c & 15];
        c = (c >> 4) ^ crc32c_nibble[c & 15];
    }
    return ~c;
}

/* The mask keeps a CRC stored next to the data it covers from being a valid CRC of
 * data that itself contains CRCs (TFRecord's rationale; constant from its spec). */
uint32_t cpt_crc32c_masked(const void *data, size_t n) {
    uint32_t c = cpt_crc32c(data, n, 0);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}
