/**
 * The small interfaces device models use. A model knows nothing of its wiring: it is given a
 * time source, an event scheduler and output lines, and it exposes port handlers
 * (PortDevice) and plain-data snapshots (Snapshottable). The machine (or the VMM, on guest
 * time) wires the same model to its own bus.
 */

/** Current time in CPU cycles (an integer-valued number) and the cycles per second. */
export interface TimeSource {
  now(): number;
  readonly hz: number;
}

export type EventHandle = number;

/**
 * A deterministic event queue, owned by the machine. Events due at the same cycle fire in the
 * order they were scheduled.
 */
export interface EventScheduler {
  schedule(atCycle: number, cb: () => void): EventHandle;
  cancel(h: EventHandle): void;
}

/** A wire. Level devices drive it; edge devices pulse set(true); set(false). */
export interface IrqLine {
  set(level: boolean): void;
}

/**
 * Port handlers. `port` is the offset from the device's conventional base (each device file
 * exports its conventional placement), `size` the access width in bytes.
 */
export interface PortDevice {
  ioRead(port: number, size: 1 | 2 | 4): number;
  ioWrite(port: number, size: 1 | 2 | 4, value: number): void;
}

/** save() returns plain, JSON-serialisable data; restore() accepts what save() returned. */
export interface Snapshottable<S> {
  save(): S;
  restore(s: S): void;
  reset(): void;
}

/** The host end of an output stream. */
export interface ByteSink {
  write(bytes: Uint8Array): void;
}

/** The host end of an input stream: returns null or an empty array if nothing is available now. */
export interface ByteSource {
  read(max: number): Uint8Array | null;
}

/**
 * Where a device's ports conventionally sit on a PC: the ports base..base+length-1 map to the
 * device offsets offset..offset+length-1. A wiring may place them elsewhere.
 */
export interface PortWindow {
  readonly base: number;
  readonly length: number;
  readonly offset: number;
}
