import { MatrixError as HttpMatrixError } from '@tessera/http';

/**
 * libs/http's MatrixError (rendered by its exception filter), plus what client-api needs:
 * a body of only `extra` fields for the first 401 of user-interactive auth, which carries no
 * errcode. Headers such as Retry-After are set on the reply before throwing (see RateLimitGuard).
 */
export class MatrixError extends HttpMatrixError {
  constructor(
    status: number,
    errcode: string,
    message: string,
    extra: Record<string, unknown> = {},
    /** The body is only `extra`. */
    readonly bodyIsExtraOnly = false,
  ) {
    super(status, errcode, message, extra);
  }

  override toJSON(): Record<string, unknown> {
    return this.bodyIsExtraOnly ? { ...this.extra } : super.toJSON();
  }
}

export const badJson = (message: string) => new MatrixError(400, 'M_BAD_JSON', message);
export const notJson = (message: string) => new MatrixError(400, 'M_NOT_JSON', message);
export const missingParam = (message: string) => new MatrixError(400, 'M_MISSING_PARAM', message);
export const invalidParam = (message: string) => new MatrixError(400, 'M_INVALID_PARAM', message);
export const forbidden = (message: string) => new MatrixError(403, 'M_FORBIDDEN', message);
export const notFound = (message: string) => new MatrixError(404, 'M_NOT_FOUND', message);
