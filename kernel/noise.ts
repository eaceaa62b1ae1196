/**
 * Noise accounting: every cycle the kernel takes on a core, by cause (DESIGN.md: "Record every
 * cycle the kernel takes from a running thread ... so experiments can show where noise comes
 * from"). Per core: count and cycles of each interrupt vector, each system call, each exception
 * vector, each signal delivered (the frame, or the default action, on the way back to user
 * mode after any of those traps); how many times the kernel interrupted a running thread that did not ask for it
 * (external interrupts arriving while a thread ran: the noise an application sees), and idle
 * wake-ups.
 */

export interface Tally { count: number; cycles: number }

function bump(m: Map<number, Tally>, key: number, cycles: number): void {
  const t = m.get(key);
  if (t === undefined) m.set(key, { count: 1, cycles });
  else { t.count++; t.cycles += cycles; }
}

export class NoiseStats {
  /** External interrupts by vector (while a thread ran, or waking the idle core). */
  readonly interrupts = new Map<number, Tally>();
  /** System calls by number. */
  readonly syscalls = new Map<number, Tally>();
  /** Exceptions by vector. */
  readonly exceptions = new Map<number, Tally>();
  /** Signal deliveries by signal number (proc/signals.ts deliverSignals: frame set-up or default action). */
  readonly signals = new Map<number, Tally>();
  /** Interrupts that stopped a running thread (the kernel's interruptions of an application). */
  interruptions = 0;
  /** Cycles those interruptions took from the thread. */
  interruptionCycles = 0;
  /** Interrupts that woke the idle core. */
  idleWakeups = 0;
  /** Context switches between threads. */
  switches = 0;
  /** Cycles of general-purpose-profile deferred work (0 under the LWK profile). */
  deferredWorkCycles = 0;

  interrupt(vector: number, cycles: number, interruptedThread: boolean): void {
    bump(this.interrupts, vector, cycles);
    if (interruptedThread) { this.interruptions++; this.interruptionCycles += cycles; } else this.idleWakeups++;
  }

  syscall(nr: number, cycles: number): void { bump(this.syscalls, nr, cycles); }
  exception(vector: number, cycles: number): void { bump(this.exceptions, vector, cycles); }
  signal(sig: number, cycles: number): void { bump(this.signals, sig, cycles); }

  /** Total cycles the kernel spent on this core for each category. */
  totals(): { interrupts: Tally; syscalls: Tally; exceptions: Tally; signals: Tally } {
    const sum = (m: Map<number, Tally>): Tally => {
      let count = 0, cycles = 0;
      for (const t of m.values()) { count += t.count; cycles += t.cycles; }
      return { count, cycles };
    };
    return { interrupts: sum(this.interrupts), syscalls: sum(this.syscalls), exceptions: sum(this.exceptions), signals: sum(this.signals) };
  }
}
