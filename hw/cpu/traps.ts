/** Kinds of host trap (DESIGN.md, execution model), in a module of their own so isa/ files can use them. */
export const TRAP_EXCEPTION = 0;  // fault or trap raised by the instruction; eip = faulting insn (faults) or next (traps)
export const TRAP_SOFTINT = 1;    // INT n, INT3, INTO: eip = next instruction
export const TRAP_SYSENTER = 2;   // SYSENTER: eip = next instruction
export const TRAP_INTERRUPT = 3;  // external interrupt (or NMI, vector 2) in user mode: eip = next to run
export const TRAP_IDLE = 4;       // an interrupt (vector, acknowledged) woke the core from host idle (HLT)
export const TRAP_VMEXIT = 5;     // a #VMEXIT ended the guest run (svm.ts): vector = EXITCODE, eip = the host's
