/**
 * The execution model's requests (DESIGN.md, "The hardware line and the execution model"): a
 * host thread is a generator that yields a request and is resumed with its result. Nothing ever
 * blocks the one JavaScript thread: "blocking" is a request the host carries out while the core
 * does other work (or idles), and the thread is resumed when the request is done.
 *
 * What each request guarantees is in hostif/README.md ("The requests").
 */

/**
 * A lock, created by Host.createLock(). Acquired by yielding a 'lock' request (granted in FIFO
 * order), released by Host.unlock(). Opaque: only the host that made it may use it.
 */
export interface HostLock {
  readonly id: number;
  readonly name: string;
}

export type HostRequest =
  /**
   * Enter the guest of this VMCB (a page of emulated RAM laid out as in the APM) until a #VMEXIT
   * or the cycle deadline, whichever comes first; resumed with {kind:'vmexit', exitCode}. The
   * deadline's interrupt forces an INTR exit, so the VMCB must intercept INTR and set
   * V_INTR_MASKING (physical interrupts masked by the host's IF, not the guest's, APM 15.21.1),
   * as KVM's and Palacios' VMCBs do; a host refuses other VMCBs (HostifError). `regs` holds the
   * guest's general registers other than EAX and ESP (which are in the VMCB), indexed as
   * Cpu.r (eax ecx edx ebx esp ebp esi edi): loaded before VMRUN and stored back after the exit
   * (Palacios' v3_svm_launch takes the same save area); without it the other registers are
   * whatever the core holds. `deadline` may be Infinity (no deadline).
   */
  | { kind: 'vmrun'; vmcb: number; deadline: number; regs?: Int32Array }
  /** Until the cycle deadline or woken; resumed with {kind:'timeout'} or {kind:'woken'}. */
  | { kind: 'sleep'; until: number }
  /** Until woken; resumed with {kind:'woken'}. */
  | { kind: 'wait' }
  /** Let the core's other runnable threads run first; resumed with {kind:'yielded'}. */
  | { kind: 'yield' }
  /** Resumed with {kind:'locked'} once the lock is held (FIFO). */
  | { kind: 'lock'; lock: HostLock };

export type HostResume =
  /** The nominal first resume (a generator ignores the value of its first next()). */
  | { kind: 'start' }
  /**
   * The guest run ended: `exitCode` is the VMCB's EXITCODE (EXIT_INTR when a host interrupt,
   * such as the deadline, forced the exit; EXIT_INVALID, -1, when VMRUN refused the VMCB),
   * `vmcb` the VMCB's address.
   */
  | { kind: 'vmexit'; exitCode: number; vmcb: number }
  | { kind: 'timeout' }
  | { kind: 'woken' }
  | { kind: 'yielded' }
  | { kind: 'locked' };

export type HostThread = Generator<HostRequest, void, HostResume>;

/** The kinds of request, for hosts that check what a thread yields. */
export const HOST_REQUEST_KINDS: readonly HostRequest['kind'][] = ['vmrun', 'sleep', 'wait', 'yield', 'lock'];
