/** What the run loop (vcore.ts) does after an exit handler: re-enter, sleep until an interrupt (HLT), or end. */
export const ACT_CONTINUE = 0, ACT_HALT = 1, ACT_STOP = 2;
