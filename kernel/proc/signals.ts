/**
 * Linux signal numbers (i386) and which signal a CPU exception raised in user mode becomes
 * (Linux arch/x86/kernel/traps.c). Handlers and delivery come later; for now a fault kills the
 * process with its signal (the default action), and `run` exits with 128 + the signal number.
 */
export const SIGHUP = 1, SIGINT = 2, SIGQUIT = 3, SIGILL = 4, SIGTRAP = 5, SIGABRT = 6, SIGBUS = 7, SIGFPE = 8;
export const SIGKILL = 9, SIGUSR1 = 10, SIGSEGV = 11, SIGUSR2 = 12, SIGPIPE = 13, SIGALRM = 14, SIGTERM = 15;
export const SIGCHLD = 17, SIGCONT = 18, SIGSTOP = 19, SIGTSTP = 20, SIGSYS = 31;
export const NSIG = 64;

export const SIGNAL_NAMES: Readonly<Record<number, string>> = {
  1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 5: 'SIGTRAP', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE',
  9: 'SIGKILL', 10: 'SIGUSR1', 11: 'SIGSEGV', 12: 'SIGUSR2', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM',
  16: 'SIGSTKFLT', 17: 'SIGCHLD', 18: 'SIGCONT', 19: 'SIGSTOP', 20: 'SIGTSTP', 21: 'SIGTTIN', 22: 'SIGTTOU',
  23: 'SIGURG', 24: 'SIGXCPU', 25: 'SIGXFSZ', 26: 'SIGVTALRM', 27: 'SIGPROF', 28: 'SIGWINCH', 29: 'SIGIO',
  30: 'SIGPWR', 31: 'SIGSYS',
};

export function signalName(sig: number): string { return SIGNAL_NAMES[sig] ?? `SIG${sig}`; }

/** The signal Linux sends for a user-mode exception with this vector. */
export function signalForException(vector: number): number {
  switch (vector) {
    case 0: return SIGFPE;   // #DE divide error
    case 1: return SIGTRAP;  // #DB
    case 3: return SIGTRAP;  // #BP
    case 4: return SIGSEGV;  // #OF
    case 5: return SIGSEGV;  // #BR
    case 6: return SIGILL;   // #UD
    case 7: return SIGILL;   // #NM: no FPU to emulate
    case 11: return SIGBUS;  // #NP
    case 12: return SIGBUS;  // #SS
    case 16: return SIGFPE;  // #MF
    case 17: return SIGBUS;  // #AC
    case 19: return SIGFPE;  // #XM
    default: return SIGSEGV; // #TS, #GP, #PF and the rest
  }
}

/** Default actions that end the process with a core dump (the shell's "(core dumped)"). */
export function dumpsCore(sig: number): boolean {
  return [SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGSYS, 24, 25].includes(sig);
}
