import { Body, Controller, HttpCode, Post, UseGuards } from '@nestjs/common';
import { AccessTokenGuard } from '../auth/auth.guard.js';
import { RateLimited, RateLimitGuard } from '../auth/rate-limit.guard.js';
import { MatrixError, invalidParam, missingParam } from '../errors.js';
import { clientPaths } from '../http/paths.js';
import { objectBody, optionalInteger, optionalString, requireString, type JsonBody } from '../validation.js';

/**
 * Third-party identifiers (email, phone numbers) on a server that sends neither email nor SMS,
 * talks to no identity server and advertises m.3pid_changes as disabled (GET /capabilities).
 * Each endpoint answers as Synapse does in that configuration (no email config, no
 * account_threepid_delegate_msisdn, enable_3pid_changes off), so that clients written against
 * it read the answers they expect. GET /account/3pid (always an empty list) is in
 * accounts.controller.ts. Where Synapse checks the body before refusing (the SMS requestTokens,
 * bind, unbind), so do we, with the house error codes (M_MISSING_PARAM for an absent key).
 */
const THREEPID_CHANGES_DISABLED = () => new MatrixError(400, 'M_FORBIDDEN', '3PID changes are disabled on this server');

/** Spec ("client_secret"): 1 to 255 characters of [0-9a-zA-Z.=_-]. */
const CLIENT_SECRET = /^[0-9a-zA-Z.=_-]{1,255}$/;

/** The requestToken endpoints: no access token (registration and password reset have none). */
@Controller()
@UseGuards(RateLimitGuard)
export class ThreepidRequestTokenController {
  @Post(clientPaths('account/3pid/email/requestToken'))
  @HttpCode(200)
  @RateLimited('register')
  accountEmail() {
    // Synapse checks enable_3pid_changes before anything else.
    throw THREEPID_CHANGES_DISABLED();
  }

  @Post(clientPaths('account/3pid/msisdn/requestToken'))
  @HttpCode(200)
  @RateLimited('register')
  accountMsisdn(@Body() body: unknown) {
    checkMsisdnRequest(objectBody(body, false));
    throw new MatrixError(400, 'M_THREEPID_MEDIUM_NOT_SUPPORTED', 'Adding phone numbers to an account is not supported by this homeserver');
  }

  @Post(clientPaths('register/email/requestToken'))
  @HttpCode(200)
  @RateLimited('register')
  registerEmail() {
    throw new MatrixError(400, 'M_UNKNOWN', 'Email-based registration is disabled on this server: it sends no email');
  }

  @Post(clientPaths('register/msisdn/requestToken'))
  @HttpCode(200)
  @RateLimited('register')
  registerMsisdn(@Body() body: unknown) {
    checkMsisdnRequest(objectBody(body, false));
    throw new MatrixError(400, 'M_UNKNOWN', 'Registration by phone number is not supported on this homeserver');
  }

  @Post(clientPaths('account/password/email/requestToken'))
  @HttpCode(200)
  @RateLimited('register')
  passwordEmail() {
    throw new MatrixError(400, 'M_UNKNOWN', 'Email-based password resets are disabled on this server: it sends no email');
  }

  /** Synapse does not serve this one (404); answered as its email sibling. */
  @Post(clientPaths('account/password/msisdn/requestToken'))
  @HttpCode(200)
  @RateLimited('register')
  passwordMsisdn() {
    throw new MatrixError(400, 'M_UNKNOWN', 'Password resets by phone number are not supported on this server');
  }
}

/** Changes to the logged-in user's identifiers, and identity server bindings. */
@Controller()
@UseGuards(AccessTokenGuard, RateLimitGuard)
export class ThreepidAccountController {
  /** Deprecated POST /account/3pid (three_pid_creds). */
  @Post(clientPaths('account/3pid'))
  @HttpCode(200)
  @RateLimited()
  add3pidLegacy() {
    throw THREEPID_CHANGES_DISABLED();
  }

  @Post(clientPaths('account/3pid/add'))
  @HttpCode(200)
  @RateLimited()
  add() {
    throw THREEPID_CHANGES_DISABLED();
  }

  @Post(clientPaths('account/3pid/delete'))
  @HttpCode(200)
  @RateLimited()
  delete() {
    throw THREEPID_CHANGES_DISABLED();
  }

  /** Binding happens at an identity server, which this server never contacts. */
  @Post(clientPaths('account/3pid/bind'))
  @HttpCode(200)
  @RateLimited()
  bind(@Body() body: unknown) {
    const request = objectBody(body, false);
    checkClientSecret(request);
    for (const key of ['sid', 'id_server', 'id_access_token']) requireString(request, key);
    throw new MatrixError(400, 'M_SERVER_NOT_TRUSTED', 'This homeserver does not talk to identity servers: bind the identifier at the identity server directly');
  }

  /**
   * No identifier was ever bound through this server, and it contacts no identity server: as
   * Synapse with no known binding, nothing is unbound ("no-support").
   */
  @Post(clientPaths('account/3pid/unbind'))
  @HttpCode(200)
  @RateLimited()
  unbind(@Body() body: unknown) {
    const request = objectBody(body, false);
    checkMedium(request);
    requireString(request, 'address');
    optionalString(request, 'id_server');
    return { id_server_unbind_result: 'no-support' };
  }
}

function checkClientSecret(body: JsonBody): void {
  if (!CLIENT_SECRET.test(requireString(body, 'client_secret'))) throw invalidParam('"client_secret" must be 1 to 255 characters of 0-9, a-z, A-Z, ".", "=", "_" and "-"');
}

function checkMedium(body: JsonBody): void {
  const medium = requireString(body, 'medium');
  if (medium !== 'email' && medium !== 'msisdn') throw invalidParam('"medium" must be "email" or "msisdn"');
}

/** The body of an SMS requestToken: client_secret, country, phone_number, send_attempt. */
function checkMsisdnRequest(body: JsonBody): void {
  checkClientSecret(body);
  requireString(body, 'country');
  requireString(body, 'phone_number');
  if (body.send_attempt === undefined || body.send_attempt === null) throw missingParam('missing "send_attempt"');
  optionalInteger(body, 'send_attempt');
  optionalString(body, 'next_link');
}
