/* mt_call_as: the trampoline that lends the caller's identity to a loader call (callas.h). */
#define _GNU_SOURCE
#include <elf.h>
#include <link.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "callas.h"

__thread mt_dlcall *mt_t_dlcall __attribute__((tls_model("initial-exec"))) = NULL;
__thread uint64_t mt_t_dlcalls __attribute__((tls_model("initial-exec"))) = 0;

/* rdi = fn, rsi = gadget, rdx/rcx/r8 = the arguments. The stack at fn's entry holds the
 * gadget, then our continuation: fn's `ret` lands on the gadget, whose `ret` lands on 1:.
 * The stack is aligned as after a call (rsp = 8 mod 16 at fn's entry). */
__asm__(
    ".text\n"
    ".globl mt_call_as\n"
    ".hidden mt_call_as\n"
    ".type mt_call_as, @function\n"
    "mt_call_as:\n"
    ".cfi_startproc\n"
    "    pushq %rbp\n"
    ".cfi_def_cfa_offset 16\n"
    ".cfi_offset %rbp, -16\n"
    "    movq %rsp, %rbp\n"
    ".cfi_def_cfa_register %rbp\n"
    "    movq %rdi, %rax\n"
    "    movq %rsi, %r10\n"
    "    movq %rdx, %rdi\n"
    "    movq %rcx, %rsi\n"
    "    movq %r8, %rdx\n"
    "    subq $8, %rsp\n"
    "    leaq 1f(%rip), %r11\n"
    "    pushq %r11\n"
    "    pushq %r10\n"
    "    jmp *%rax\n"
    "1:\n"
    "    leave\n"
    ".cfi_def_cfa %rsp, 8\n"
    "    ret\n"
    ".cfi_endproc\n"
    ".size mt_call_as, .-mt_call_as\n");

typedef struct {
    uintptr_t ra, lo, hi;
} exec_segment;

static int find_segment(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    exec_segment *s = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        uintptr_t hi = lo + ph->p_filesz;
        if (s->ra >= lo && s->ra < hi) {
            s->lo = lo;
            s->hi = hi;
            return 1;
        }
    }
    return 0;
}

/* 1 when this thread runs with a shadow stack (a borrowed return address would fault). */
static int shadow_stack_enabled(void) {
    unsigned long features = 0;
    /* ARCH_SHSTK_STATUS; kernels without shadow-stack support fail with EINVAL. */
    if (syscall(SYS_arch_prctl, 0x5005, &features) != 0) return 0;
    return (features & 1) != 0;
}

uintptr_t mt_caller_gadget(uintptr_t ra) {
    static int checked, unsafe;
    if (!checked) {
        unsafe = shadow_stack_enabled();
        checked = 1;
    }
    if (unsafe || ra == 0) return 0;
    exec_segment s = {ra, 0, 0};
    dl_iterate_phdr(find_segment, &s);
    if (s.hi == 0) return 0;
    for (uintptr_t p = ra; p < s.hi; p++)
        if (*(const volatile uint8_t *)p == 0xC3) return p;
    for (uintptr_t p = ra; p-- > s.lo;)
        if (*(const volatile uint8_t *)p == 0xC3) return p;
    return 0;
}
