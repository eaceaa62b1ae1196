/** Kinds of memory access, for translation and #PF error codes. */
export const ACC_READ = 0;
export const ACC_WRITE = 1;
export const ACC_EXEC = 2;
