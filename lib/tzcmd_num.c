/* tzcmd_num.c - element values of any safetensors dtype as double and back,
 * for tz stats (reading) and tz make (writing). F16 and BF16 are converted
 * by hand (round to nearest even); integers saturate, so no conversion is
 * ever undefined behaviour. */
#include "tzcmd.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

int tzn_is_float(enum st_dtype dt)
{
    return dt == ST_F16 || dt == ST_BF16 || dt == ST_F32 || dt == ST_F64;
}

static double half_to_double(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = ldexp(m, -24);                 /* zero and subnormals */
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp(m + 1024, e - 25);
    return (h & 0x8000) ? -v : v;
}

static uint16_t float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0);
    if (ax >= 0x477ff000u) return sign | 0x7c00; /* >= 65520 rounds to inf */
    if (ax < 0x38800000u) {                      /* below 2^-14: subnormal */
        float a;
        memcpy(&a, &ax, 4);
        return sign | (uint16_t)nearbyint((double)a * 16777216.0);
    }
    uint32_t h = ((((ax >> 23) - 127 + 15) << 10) | ((ax & 0x7fffffu) >> 13));
    uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return sign | (uint16_t)h;
}

static double bf16_to_double(uint16_t b)
{
    uint32_t x = (uint32_t)b << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static uint16_t float_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

double tzn_get(enum st_dtype dt, const void *p, size_t i)
{
    switch (dt) {
    case ST_BOOL:
    case ST_U8: return ((const uint8_t *)p)[i];
    case ST_I8: return ((const int8_t *)p)[i];
    case ST_I16: return ((const int16_t *)p)[i];
    case ST_U16: return ((const uint16_t *)p)[i];
    case ST_F16: return half_to_double(((const uint16_t *)p)[i]);
    case ST_BF16: return bf16_to_double(((const uint16_t *)p)[i]);
    case ST_I32: return ((const int32_t *)p)[i];
    case ST_U32: return ((const uint32_t *)p)[i];
    case ST_F32: return ((const float *)p)[i];
    case ST_F64: return ((const double *)p)[i];
    case ST_I64: return (double)((const int64_t *)p)[i];
    case ST_U64: return (double)((const uint64_t *)p)[i];
    default: TP_ASSERT(!"bad dtype"); return 0;
    }
}

/* double to float without relying on Annex F for out-of-range values */
static float to_float(double v)
{
    if (v > FLT_MAX) return INFINITY;
    if (v < -FLT_MAX) return -INFINITY;
    return (float)v;
}

/* v rounded and clamped to [lo, hi]; NaN gives 0. */
static double sat(double v, double lo, double hi)
{
    if (isnan(v)) return 0;
    v = nearbyint(v);
    return v < lo ? lo : v > hi ? hi : v;
}

void tzn_set(enum st_dtype dt, void *p, size_t i, double v)
{
    switch (dt) {
    case ST_BOOL: ((uint8_t *)p)[i] = !isnan(v) && v != 0; break;
    case ST_U8: ((uint8_t *)p)[i] = (uint8_t)sat(v, 0, UINT8_MAX); break;
    case ST_I8: ((int8_t *)p)[i] = (int8_t)sat(v, INT8_MIN, INT8_MAX); break;
    case ST_I16: ((int16_t *)p)[i] = (int16_t)sat(v, INT16_MIN, INT16_MAX); break;
    case ST_U16: ((uint16_t *)p)[i] = (uint16_t)sat(v, 0, UINT16_MAX); break;
    case ST_F16: ((uint16_t *)p)[i] = float_to_half(to_float(v)); break;
    case ST_BF16: ((uint16_t *)p)[i] = float_to_bf16(to_float(v)); break;
    case ST_I32: ((int32_t *)p)[i] = (int32_t)sat(v, INT32_MIN, INT32_MAX); break;
    case ST_U32: ((uint32_t *)p)[i] = (uint32_t)sat(v, 0, UINT32_MAX); break;
    case ST_F32: ((float *)p)[i] = to_float(v); break;
    case ST_F64: ((double *)p)[i] = v; break;
    case ST_I64: {
        /* 2^63 is the first double out of range */
        double r = sat(v, -9223372036854775808.0, 9223372036854775808.0);
        ((int64_t *)p)[i] = r >= 9223372036854775808.0 ? INT64_MAX : (int64_t)r;
        break;
    }
    case ST_U64: {
        double r = sat(v, 0, 18446744073709551616.0);
        ((uint64_t *)p)[i] = r >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)r;
        break;
    }
    default: TP_ASSERT(!"bad dtype");
    }
}
