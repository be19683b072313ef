/**
 * A Matrix error response: `{"errcode": "M_...", "error": "..."}` with the spec's HTTP status.
 * Controllers throw it; MatrixExceptionFilter renders it. `extra` adds spec-defined fields
 * (e.g. `retry_after_ms` for M_LIMIT_EXCEEDED, `soft_logout` for M_UNKNOWN_TOKEN).
 */
export class MatrixError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'MatrixError';
  }

  toJSON(): Record<string, unknown> {
    return { ...this.extra, errcode: this.errcode, error: this.message };
  }
}
