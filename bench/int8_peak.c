// The peak of the int8 kernels' instruction mixes on this core, all in L1 (no memory): the AVX2
// int16-pair loop of I16Kernel, the vpmaddubsw form it does not use, vpmaddwd alone, and f32 FMA.
//   gcc -O2 -mavx2 -mfma bench/int8_peak.c -o /tmp/int8_peak && /tmp/int8_peak
#include <stdio.h>
#include <stdint.h>
#include <time.h>
#include <immintrin.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define N 100000000L
int32_t buf[64] __attribute__((aligned(64)));
int main(){
  for(int i=0;i<64;i++)buf[i]=i;
  double t;long i;
  // A: 12 madd + 12 add, 6 bcast, 2 loads  (192 MAC)
  t=now();
  for(i=0;i<N/10;i++){
    asm volatile(
      ".rept 10\n"
      "vmovdqa (%0),%%ymm13\n vmovdqa 32(%0),%%ymm12\n"
      "vpbroadcastd 0(%0),%%ymm14\n vpmaddwd %%ymm13,%%ymm14,%%ymm15\n vpaddd %%ymm15,%%ymm11,%%ymm11\n vpmaddwd %%ymm12,%%ymm14,%%ymm15\n vpaddd %%ymm15,%%ymm10,%%ymm10\n"
      "vpbroadcastd 4(%0),%%ymm14\n vpmaddwd %%ymm13,%%ymm14,%%ymm15\n vpaddd %%ymm15,%%ymm9,%%ymm9\n vpmaddwd %%ymm12,%%ymm14,%%ymm15\n vpaddd %%ymm15,%%ymm8,%%ymm8\n"
      "vpbroadcastd 8(%0),%%ymm14\n vpmaddwd %%ymm13,%%ymm14,%%ymm15\n vpaddd %%ymm15,%%ymm7,%%ymm7\n vpmaddwd %%ymm12,%%ymm14,%%ymm15\n vpaddd %%ymm15,%%ymm6,%%ymm6\n"
      "vpbroadcastd 12(%0),%%ymm14\n vpmaddwd %%ymm13,%%ymm14,%%ymm15\n vpaddd %%ymm15,%%ymm5,%%ymm5\n vpmaddwd %%ymm12,%%ymm14,%%ymm15\n vpaddd %%ymm15,%%ymm4,%%ymm4\n"
      "vpbroadcastd 16(%0),%%ymm14\n vpmaddwd %%ymm13,%%ymm14,%%ymm15\n vpaddd %%ymm15,%%ymm3,%%ymm3\n vpmaddwd %%ymm12,%%ymm14,%%ymm15\n vpaddd %%ymm15,%%ymm2,%%ymm2\n"
      "vpbroadcastd 20(%0),%%ymm14\n vpmaddwd %%ymm13,%%ymm14,%%ymm15\n vpaddd %%ymm15,%%ymm1,%%ymm1\n vpmaddwd %%ymm12,%%ymm14,%%ymm15\n vpaddd %%ymm15,%%ymm0,%%ymm0\n"
      ".endr\n" :: "r"(buf):"memory");
  }
  double a=now()-t; printf("int16 path: %.1f GMAC/s\n", N*192/a/1e9);
  // B: u8 path: per step 12 maddubs + 12 madd(ones) + 12 add, 6 bcast, 2 loads (384 MAC)
  t=now();
  for(i=0;i<N/10;i++){
    asm volatile(
      ".rept 10\n"
      "vmovdqa (%0),%%ymm13\n vmovdqa 32(%0),%%ymm12\n"
#define S(acc0,acc1,off) "vpbroadcastd " #off "(%0),%%ymm14\n vpmaddubsw %%ymm13,%%ymm14,%%ymm15\n vpmaddwd %%ymm15,%%ymm9,%%ymm15\n vpaddd %%ymm15,%%ymm" #acc0 ",%%ymm" #acc0 "\n vpmaddubsw %%ymm12,%%ymm14,%%ymm15\n vpmaddwd %%ymm15,%%ymm9,%%ymm15\n vpaddd %%ymm15,%%ymm" #acc1 ",%%ymm" #acc1 "\n"
      S(11,10,0) S(8,7,4) S(6,5,8) S(4,3,12) S(2,1,16) S(0,11,20)
      ".endr\n" :: "r"(buf):"memory");
  }
  double b=now()-t; printf("u8 path: %.1f GMAC/s\n", N*384/b/1e9);
  // C: madd only (no add), 12 per step
  t=now();
  for(i=0;i<N/10;i++){
    asm volatile(
      ".rept 10\n"
      "vmovdqa (%0),%%ymm13\n vmovdqa 32(%0),%%ymm12\n"
#define T(r0,r1,off) "vpbroadcastd " #off "(%0),%%ymm14\n vpmaddwd %%ymm13,%%ymm14,%%ymm" #r0 "\n vpmaddwd %%ymm12,%%ymm14,%%ymm" #r1 "\n"
      T(0,1,0) T(2,3,4) T(4,5,8) T(6,7,12) T(8,9,16) T(10,11,20)
      ".endr\n" :: "r"(buf):"memory");
  }
  double c=now()-t; printf("madd only: %.1f GMAC/s\n", N*192/c/1e9);
  // D: f32 fma 12 + 6 bcast
  t=now();
  for(i=0;i<N/10;i++){
    asm volatile(
      ".rept 10\n"
      "vmovaps (%0),%%ymm13\n vmovaps 32(%0),%%ymm12\n"
#define F(r0,r1,off) "vbroadcastss " #off "(%0),%%ymm14\n vfmadd231ps %%ymm13,%%ymm14,%%ymm" #r0 "\n vfmadd231ps %%ymm12,%%ymm14,%%ymm" #r1 "\n"
      F(0,1,0) F(2,3,4) F(4,5,8) F(6,7,12) F(8,9,16) F(10,11,20)
      ".endr\n" :: "r"(buf):"memory");
  }
  double d=now()-t; printf("f32: %.1f GMAC/s\n", N*96/d/1e9);
}
