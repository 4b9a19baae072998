/* CPUID mask for `fst bench --isa` (fst/bench/isa.py builds it and sets LD_PRELOAD).
 *
 * Libraries choose their kernels from what the CPUID instruction reports (ONNX Runtime's MLAS,
 * oneDNN, NumPy, glibc). Where the kernel offers CPUID faulting (`cpuid_fault` in /proc/cpuinfo),
 * arch_prctl(ARCH_SET_CPUID, 0) makes every CPUID of this process fault; the SIGSEGV handler
 * below runs the real CPUID and clears the bits listed in $FST_CPUID_CLEAR before resuming after
 * the instruction. So an AVX-512 machine can run a program as an AVX2-only CPU would.
 *
 * FST_CPUID_CLEAR: comma-separated LEAF:SUBLEAF:REGISTER:BIT, REGISTER 0..3 = EAX, EBX, ECX, EDX.
 * The setting holds for every thread created later and ends at execve: child processes that
 * inherit LD_PRELOAD set it again.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define MAX_CLEARS 64

static struct { unsigned leaf, subleaf, reg, bit; } clears[MAX_CLEARS];
static int clear_count;

static long cpuid_allowed(int on) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, on); }

static void on_segv(int sig, siginfo_t *info, void *context) {
    greg_t *regs = ((ucontext_t *)context)->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)regs[REG_RIP];
    (void)sig, (void)info;
    if (ip[0] != 0x0f || ip[1] != 0xa2) {  /* not CPUID: a real fault, which kills as usual */
        signal(SIGSEGV, SIG_DFL);
        return;
    }
    unsigned leaf = (unsigned)regs[REG_RAX], subleaf = (unsigned)regs[REG_RCX], out[4];
    cpuid_allowed(1);
    __cpuid_count(leaf, subleaf, out[0], out[1], out[2], out[3]);
    cpuid_allowed(0);
    for (int i = 0; i < clear_count; i++)
        if (clears[i].leaf == leaf && clears[i].subleaf == subleaf)
            out[clears[i].reg] &= ~(1u << clears[i].bit);
    regs[REG_RAX] = out[0], regs[REG_RBX] = out[1], regs[REG_RCX] = out[2], regs[REG_RDX] = out[3];
    regs[REG_RIP] += 2;
}

__attribute__((constructor)) static void start(void) {
    const char *spec = getenv("FST_CPUID_CLEAR");
    for (const char *p = spec; p && *p && clear_count < MAX_CLEARS; clear_count++) {
        unsigned v[4];
        int used = 0;
        if (sscanf(p, "%u:%u:%u:%u%n", &v[0], &v[1], &v[2], &v[3], &used) != 4 || v[2] > 3 || v[3] > 31) {
            fprintf(stderr, "fst: error: FST_CPUID_CLEAR: bad entry at '%s'\n", p);
            _exit(2);
        }
        clears[clear_count].leaf = v[0], clears[clear_count].subleaf = v[1];
        clears[clear_count].reg = v[2], clears[clear_count].bit = v[3];
        p += used;
        p += *p == ',';
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_segv;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &action, NULL);
    if (cpuid_allowed(0) != 0) {
        fprintf(stderr, "fst: error: CPUID faulting refused by the kernel (arch_prctl ARCH_SET_CPUID)\n");
        _exit(2);
    }
}
