/** A run of an experiment that stopped in error (a benchmark or guest failed): one line naming it. */
export class ExperimentError extends Error {
  constructor(message: string) { super(message); this.name = 'ExperimentError'; }
}
