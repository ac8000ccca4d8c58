// LD_PRELOAD shim for benchmarks: makes a process see an x86 CPU without AVX-512, AVX-VNNI or
// AMX (AVX2 + FMA stay), so that runtimes which pick their kernels from CPUID at run time (ONNX
// Runtime's MLAS, PyTorch, lumen) can be compared on the AVX2 path of a wider CPU, in one run.
// It turns on the kernel's CPUID faulting (arch_prctl ARCH_SET_CPUID, Linux >= 4.12, CPUs with
// the cpuid_fault flag); each CPUID then raises SIGSEGV, which is answered here with the real
// values minus those features. Not for production; only bench/encoder_anchor.sh uses it.
//   gcc -O2 -shared -fPIC -o avx2_only.so bench/avx2_only.c
//   LD_PRELOAD=./avx2_only.so node --no-wasm-trap-handler ...   (V8 would take SIGSEGV otherwise)
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static int SetCpuid(int allowed) {
  return (int)syscall(SYS_arch_prctl, ARCH_SET_CPUID, allowed);
}

static void Say(const char* s) {
  ssize_t r = write(2, s, strlen(s));
  (void)r;
}

static void OnFault(int sig, siginfo_t* info, void* context) {
  (void)info;
  ucontext_t* uc = (ucontext_t*)context;
  greg_t* g = uc->uc_mcontext.gregs;
  const unsigned char* ip = (const unsigned char*)g[REG_RIP];
  if (ip[0] != 0x0f || ip[1] != 0xa2) {  // not CPUID: a real fault, die as the process would
    signal(sig, SIG_DFL);
    return;
  }
  const unsigned leaf = (unsigned)g[REG_RAX], sub = (unsigned)g[REG_RCX];
  unsigned a, b, c, d;
  SetCpuid(1);
  __cpuid_count(leaf, sub, a, b, c, d);
  SetCpuid(0);
  if (leaf == 7 && sub == 0) {
    // EBX: AVX512 F DQ IFMA PF ER CD BW VL; ECX: VBMI VBMI2 VNNI BITALG VPOPCNTDQ;
    // EDX: 4VNNIW 4FMAPS VP2INTERSECT AMX-BF16 AVX512-FP16 AMX-TILE AMX-INT8.
    b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
           (1u << 30) | (1u << 31));
    c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
    d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) |
           (1u << 25));
  } else if (leaf == 7 && sub == 1) {
    a &= ~((1u << 4) | (1u << 5) | (1u << 23));  // AVX-VNNI, AVX512-BF16, AVX-IFMA
  }
  g[REG_RAX] = a, g[REG_RBX] = b, g[REG_RCX] = c, g[REG_RDX] = d;
  g[REG_RIP] += 2;
}

__attribute__((constructor)) static void Start(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = OnFault;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGSEGV, &sa, 0);
  if (SetCpuid(0) != 0) Say("avx2_only: this kernel or CPU has no CPUID faulting; nothing hidden\n");
}
