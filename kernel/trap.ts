/**
 * The kernel's one entry point (its "IDT"): every host trap of every core comes here
 * (DESIGN.md's execution model). The trap path, as xv6's trap.c:
 *
 *   TRAP_SOFTINT 0x80 / TRAP_SYSENTER  a system call (syscalls/dispatch.ts)
 *   TRAP_SOFTINT other                  an AP's start-up trampoline (first trap of a core that is
 *                                       not online yet), or INT3/INTO/INT n from a program: a signal
 *   TRAP_EXCEPTION                      a fault or trap of the running program: its signal
 *   TRAP_INTERRUPT                      an external interrupt while a program ran
 *   TRAP_IDLE                           an interrupt that woke the idle core
 *   TRAP_VMEXIT                         the #VMEXIT of a kernel thread's 'vmrun' (kernel/hostif/):
 *                                       the thread is resumed with it; a host interrupt left
 *                                       pending (the one that forced an INTR exit) is taken
 *                                       next, as an interruption of the guest
 *
 * Interrupts are handled to completion here (no deferred work): the timer is the scheduler's
 * decision point, a reschedule IPI asks for a decision, anything else is acknowledged and
 * counted. Every path ends in the scheduler, which leaves the core ready to continue, and every
 * trap's cycles are recorded per core by cause (kernel/noise.ts).
 */
import type { Cpu, TrapRecord } from '../hw/cpu/cpu.ts';
import { TRAP_EXCEPTION, TRAP_IDLE, TRAP_INTERRUPT, TRAP_SOFTINT, TRAP_SYSENTER, TRAP_VMEXIT } from '../hw/cpu/traps.ts';
import { charge } from './costs.ts';
import { chargeDisplacement } from './interference.ts';
import type { Kernel } from './kernel.ts';
import { signalForException, SIGSEGV, SIGTRAP } from './proc/signals.ts';
import { VEC_RESCHED, VEC_TIMER } from './sched/scheduler.ts';
import { syscallEntry } from './syscalls/dispatch.ts';

/** The vector of the AP start-up trampoline's INT (kernel/boot.ts). */
export const VEC_AP_START = 0xf0;
export const VEC_SPURIOUS = 0xff;
export const VEC_APIC_ERROR = 0xfe;

/** Kernel pages and cache lines an LWK interrupt handler touches (the displacement model's inputs). */
export const LWK_IRQ_PAGES = 2, LWK_IRQ_LINES = 16;

export function trapEntry(k: Kernel, cpu: Cpu, t: TrapRecord): void {
  const host = k.host;
  if (host === null) { trapBody(k, cpu, t); return; }
  const prev = host.enterCore(k.coreOf(cpu));
  try { trapBody(k, cpu, t); } finally { host.leaveCore(prev); }
}

function trapBody(k: Kernel, cpu: Cpu, t: TrapRecord): void {
  const core = k.coreOf(cpu);
  const pc = k.percpu[core];
  if (!pc.online) {
    // the first trap of an application processor: its start-up trampoline calling in
    k.apEntry(cpu, core);
    return;
  }
  const start = cpu.cycles;
  switch (t.kind) {
    case TRAP_SOFTINT:
      if (t.vector === 0x80) {
        const nr = syscallEntry(k, cpu, core, false);
        k.sched.schedule(cpu, core);
        pc.noise.syscall(nr, cpu.cycles - start);
        return;
      }
      charge(cpu, 'exceptionEntry');
      // INT3 is SIGTRAP; INTO is #OF (SIGSEGV on Linux); any other INT n hits a DPL-0 gate: #GP, SIGSEGV
      k.userFault(cpu, core, t.vector === 3 ? SIGTRAP : SIGSEGV, t);
      k.sched.schedule(cpu, core);
      pc.noise.exception(t.vector, cpu.cycles - start);
      return;
    case TRAP_SYSENTER: {
      const nr = syscallEntry(k, cpu, core, true);
      k.sched.schedule(cpu, core);
      pc.noise.syscall(nr, cpu.cycles - start);
      return;
    }
    case TRAP_EXCEPTION:
      charge(cpu, 'exceptionEntry');
      k.userFault(cpu, core, signalForException(t.vector), t);
      k.sched.schedule(cpu, core);
      pc.noise.exception(t.vector, cpu.cycles - start);
      return;
    case TRAP_INTERRUPT:
    case TRAP_IDLE: {
      // after a #VMEXIT the host takes a pending interrupt from idle: it interrupted the guest
      const cr = k.sched.cores[core];
      const running = t.kind === TRAP_INTERRUPT || cr.exitIrq;
      cr.exitIrq = false;
      if (!running && pc.idleSince >= 0) { pc.idleCycles += cpu.cycles - pc.idleSince; pc.idleSince = -1; }
      charge(cpu, running ? 'interruptEntry' : 'idleWake');
      interrupt(k, cpu, core, t.vector, running);
      if (running) chargeDisplacement(cpu, LWK_IRQ_PAGES, LWK_IRQ_LINES);
      k.sched.schedule(cpu, core);
      pc.noise.interrupt(t.vector, cpu.cycles - start, running);
      return;
    }
    case TRAP_VMEXIT: {
      charge(cpu, 'vmexitEntry');
      k.sched.guestExit(cpu, core, t.vector);
      k.host?.noteExit(core, t.vector, cpu.cycles - start);
      if (cpu.intc !== null && cpu.intc.hasInterrupt()) {
        // the interrupt that ended the run (or came with the exit) is taken now, as host
        // software does after #VMEXIT (STI): from idle it arrives at once, as TRAP_IDLE
        k.sched.cores[core].exitIrq = true;
        cpu.idle();
        return;
      }
      k.sched.schedule(cpu, core);
      return;
    }
    default:
      throw new Error(`unknown host trap kind ${t.kind} on core ${core}`);
  }
}

/** One external interrupt, handled to completion. */
function interrupt(k: Kernel, cpu: Cpu, core: number, vector: number, threadRunning: boolean): void {
  switch (vector) {
    case VEC_SPURIOUS:
      return; // no EOI for the spurious vector
    case VEC_TIMER:
      k.apic.eoi(cpu);
      k.sched.timerInterrupt(cpu, core, threadRunning);
      return;
    case VEC_RESCHED:
      k.apic.eoi(cpu);
      return; // the decision follows in schedule()
    case VEC_APIC_ERROR:
      k.apic.eoi(cpu);
      k.log.print(cpu, `core ${core}: local APIC error interrupt`);
      return;
    default:
      // a vector hooked through the host interface: its handler acknowledges it (ackInterrupt)
      if (k.host !== null && k.host.interrupt(cpu, core, vector)) return;
      k.apic.eoi(cpu);
      k.strayInterrupts++;
  }
}
