import { Inject, Injectable } from '@nestjs/common';
import type { Db, Queryable } from '@tessera/storage';
import { badJson, invalidParam, MatrixError, missingParam, notFound } from '../errors.js';
import { StreamChanges } from '../stream-changes.js';
import { CLIENT_API_DB } from '../tokens.js';
import { isPlainObject, isRoomId, isUserId, type JsonBody } from '../validation.js';
import { AccountDataService } from './account-data.service.js';
import { defaultPushRules, PUSH_RULE_KINDS, type PushRule, type PushRuleKind, type PushRuleset } from './default-push-rules.js';

/**
 * What a user changed: their own rules per kind (in priority order) and their changes to the
 * server-default rules. The full ruleset is computed from this and the current defaults, so
 * new server defaults reach everyone.
 */
interface PushRulesState {
  rules: Record<PushRuleKind, PushRule[]>;
  defaults: Record<string, { enabled?: boolean; actions?: unknown[] }>;
}

const emptyState = (): PushRulesState => ({ rules: { override: [], content: [], room: [], sender: [], underride: [] }, defaults: {} });

/**
 * Push rules (spec "Push Rules" API). Every change also rewrites the user's m.push_rules
 * account data, which is how /sync tells clients about them.
 */
@Injectable()
export class PushRulesService {
  constructor(
    @Inject(CLIENT_API_DB) private readonly db: Db,
    @Inject(AccountDataService) private readonly accountData: AccountDataService,
    @Inject(StreamChanges) private readonly changes: StreamChanges,
  ) {}

  private async loadState(db: Queryable, userId: string, lock = false): Promise<PushRulesState> {
    const { rows } = await db.query<{ state: PushRulesState }>(`SELECT state FROM push_rules WHERE user_id = $1${lock ? ' FOR UPDATE' : ''}`, [userId]);
    return rows[0]?.state ?? emptyState();
  }

  /** The user's full ruleset: master first, then the user's override rules, then the other defaults (Synapse's order). */
  async ruleset(userId: string, state?: PushRulesState): Promise<PushRuleset> {
    return compute(userId, state ?? (await this.loadState(this.db, userId)));
  }

  async getRule(userId: string, kind: string, ruleId: string): Promise<PushRule> {
    // A kind this server has not (postcontent of MSC4306, say) holds no rule: 404, the spec's
    // answer for a rule that does not exist, which clients probe for (Complement
    // thread_notifications_test.go reads 404 as "nothing to disable"). Writes still refuse it.
    if (!PUSH_RULE_KINDS.includes(kind as PushRuleKind)) throw notFound(`No push rule ${kind}/${ruleId}`);
    const ruleset = await this.ruleset(userId);
    const found = ruleset[checkKind(kind)].find((r) => r.rule_id === ruleId);
    if (!found) throw notFound(`No push rule ${kind}/${ruleId}`);
    return found;
  }

  async putRule(userId: string, kind: string, ruleId: string, body: JsonBody, before?: string, after?: string): Promise<void> {
    const k = checkKind(kind);
    if (ruleId.startsWith('.')) throw invalidParam('Rule ids starting with "." are reserved for server-default rules');
    if (ruleId === '' || ruleId.includes('/') || ruleId.includes('\\')) throw invalidParam('Rule ids must not be empty or contain / or \\');
    if (body.actions === undefined) throw missingParam('missing "actions"');
    const actions = checkActions(body.actions);
    const rule: PushRule = { rule_id: ruleId, default: false, enabled: true, actions };
    if (k === 'content') {
      if (body.pattern === undefined) throw missingParam('Content rules need "pattern"');
      if (typeof body.pattern !== 'string') throw badJson('"pattern" must be a string');
      rule.pattern = body.pattern;
    } else if (k === 'override' || k === 'underride') {
      const conditions = body.conditions ?? [];
      if (!Array.isArray(conditions) || !conditions.every((c) => isPlainObject(c) && typeof c.kind === 'string')) {
        throw badJson('"conditions" must be a list of objects with a "kind"');
      }
      rule.conditions = conditions as Record<string, unknown>[];
    } else if (k === 'room' && !isRoomId(ruleId)) {
      throw invalidParam('The rule id of a room rule is the room id');
    } else if (k === 'sender' && !isUserId(ruleId)) {
      throw invalidParam('The rule id of a sender rule is the user id');
    }
    await this.update(userId, (state) => {
      const list = state.rules[k];
      const existing = list.findIndex((r) => r.rule_id === ruleId);
      if (existing >= 0 && before === undefined && after === undefined) {
        rule.enabled = list[existing].enabled;
        list[existing] = rule;
        return;
      }
      if (existing >= 0) list.splice(existing, 1);
      const anchor = before ?? after;
      if (anchor === undefined) {
        list.unshift(rule); // Spec: a new rule without before/after gets the highest priority of its kind.
        return;
      }
      const index = list.findIndex((r) => r.rule_id === anchor);
      if (index < 0) throw notFound(`No push rule ${kind}/${anchor} to place this rule ${before !== undefined ? 'before' : 'after'}`);
      list.splice(before !== undefined ? index : index + 1, 0, rule);
    });
  }

  async deleteRule(userId: string, kind: string, ruleId: string): Promise<void> {
    const k = checkKind(kind);
    if (ruleId.startsWith('.')) {
      if (defaultPushRules(userId)[k].some((r) => r.rule_id === ruleId)) throw new MatrixError(400, 'M_INVALID_PARAM', 'Server-default rules cannot be deleted; disable them instead');
      throw notFound(`No push rule ${kind}/${ruleId}`);
    }
    await this.update(userId, (state) => {
      const index = state.rules[k].findIndex((r) => r.rule_id === ruleId);
      if (index < 0) throw notFound(`No push rule ${kind}/${ruleId}`);
      state.rules[k].splice(index, 1);
    });
  }

  async setEnabled(userId: string, kind: string, ruleId: string, body: JsonBody): Promise<void> {
    if (body.enabled === undefined) throw missingParam('missing "enabled"');
    if (typeof body.enabled !== 'boolean') throw badJson('"enabled" must be true or false');
    const enabled = body.enabled;
    await this.modify(userId, kind, ruleId, (rule) => (rule.enabled = enabled), (change) => (change.enabled = enabled));
  }

  async setActions(userId: string, kind: string, ruleId: string, body: JsonBody): Promise<void> {
    if (body.actions === undefined) throw missingParam('missing "actions"');
    const actions = checkActions(body.actions);
    await this.modify(userId, kind, ruleId, (rule) => (rule.actions = actions), (change) => (change.actions = actions));
  }

  private async modify(userId: string, kind: string, ruleId: string, onUserRule: (rule: PushRule) => void, onDefault: (change: { enabled?: boolean; actions?: unknown[] }) => void): Promise<void> {
    const k = checkKind(kind);
    await this.update(userId, (state) => {
      if (ruleId.startsWith('.')) {
        if (!defaultPushRules(userId)[k].some((r) => r.rule_id === ruleId)) throw notFound(`No push rule ${kind}/${ruleId}`);
        onDefault((state.defaults[ruleId] ??= {}));
        return;
      }
      const rule = state.rules[k].find((r) => r.rule_id === ruleId);
      if (!rule) throw notFound(`No push rule ${kind}/${ruleId}`);
      onUserRule(rule);
    });
  }

  /**
   * As Synapse when a user joins an upgraded room (or upgrades it): their enabled rules for the
   * old room (its room rule, override and underride rules with a room_id condition naming it)
   * are copied for the new room, with the new room's id as rule id and in the conditions, at
   * the highest priority of their kind. Rules already there stay; nothing to copy writes nothing.
   */
  async copyRoomRules(userId: string, oldRoomId: string, newRoomId: string): Promise<void> {
    const copies = (state: PushRulesState): Array<[PushRuleKind, PushRule]> => {
      const out: Array<[PushRuleKind, PushRule]> = [];
      for (const k of ['override', 'room', 'underride'] as const) {
        if (state.rules[k].some((r) => r.rule_id === newRoomId)) continue;
        const rule = state.rules[k].find((r) => r.enabled && (k === 'room'
          ? r.rule_id === oldRoomId
          : (r.conditions ?? []).some((c) => c.key === 'room_id' && c.pattern === oldRoomId)));
        if (!rule) continue;
        const copy: PushRule = { ...structuredClone(rule), rule_id: newRoomId };
        if (copy.conditions) copy.conditions = copy.conditions.map((c) => (c.key === 'room_id' && c.pattern === oldRoomId ? { ...c, pattern: newRoomId } : c));
        out.push([k, copy]);
      }
      return out;
    };
    if (copies(await this.loadState(this.db, userId)).length === 0) return;
    await this.update(userId, (state) => {
      for (const [k, rule] of copies(state)) state.rules[k].unshift(rule);
    });
  }

  /** Read-modify-write under a row lock, then republish m.push_rules account data in the same transaction. */
  private async update(userId: string, change: (state: PushRulesState) => void): Promise<void> {
    const position = await this.db.transaction(async (tx) => {
      await tx.query(`INSERT INTO push_rules (user_id, state) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING`, [userId, JSON.stringify(emptyState())]);
      const state = await this.loadState(tx, userId, true);
      change(state);
      await tx.query('UPDATE push_rules SET state = $2 WHERE user_id = $1', [userId, JSON.stringify(state)]);
      return this.accountData.setIn(tx, userId, '', 'm.push_rules', { global: compute(userId, state) });
    });
    this.changes.emit({ stream: 'account_data', position, userId });
  }
}

function compute(userId: string, state: PushRulesState): PushRuleset {
  const defaults = defaultPushRules(userId);
  const apply = (rule: PushRule): PushRule => {
    const change = state.defaults[rule.rule_id];
    return change ? { ...rule, enabled: change.enabled ?? rule.enabled, actions: change.actions ?? rule.actions } : rule;
  };
  const [master, ...otherOverrides] = defaults.override.map(apply);
  return {
    override: [master, ...state.rules.override, ...otherOverrides],
    content: [...state.rules.content, ...defaults.content.map(apply)],
    room: [...state.rules.room],
    sender: [...state.rules.sender],
    underride: [...state.rules.underride, ...defaults.underride.map(apply)],
  };
}

function checkKind(kind: string): PushRuleKind {
  if (!PUSH_RULE_KINDS.includes(kind as PushRuleKind)) throw invalidParam(`Unknown push rule kind "${kind}": use one of ${PUSH_RULE_KINDS.join(', ')}`);
  return kind as PushRuleKind;
}

function checkActions(actions: unknown): unknown[] {
  if (!Array.isArray(actions)) throw badJson('"actions" must be a list');
  for (const action of actions) {
    if (typeof action === 'string') {
      // dont_notify and coalesce are deprecated no-ops that old clients still send.
      if (!['notify', 'dont_notify', 'coalesce'].includes(action)) throw badJson(`Unknown action "${action}"`);
    } else if (!isPlainObject(action) || typeof action.set_tweak !== 'string') {
      throw badJson('Each action must be "notify" or an object with "set_tweak"');
    }
  }
  return actions;
}
