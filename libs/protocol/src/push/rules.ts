/**
 * Push rules as the spec defines them (v1.16, "Push Rules"), and the server-default rules
 * ("Predefined Rules") in the spec's order. Rules that name the user (invite_for_me,
 * is_user_mention, contains_user_name) are made per user.
 */
export type PushRuleKind = 'override' | 'content' | 'room' | 'sender' | 'underride';
/** The kinds in the order they are checked. */
export const PUSH_RULE_KINDS: PushRuleKind[] = ['override', 'content', 'room', 'sender', 'underride'];

export interface PushRule {
  rule_id: string;
  default: boolean;
  enabled: boolean;
  actions: unknown[];
  conditions?: Record<string, unknown>[];
  pattern?: string;
}

export type PushRuleset = Record<PushRuleKind, PushRule[]>;

const notify = 'notify';
const soundDefault = { set_tweak: 'sound', value: 'default' };
const highlight = { set_tweak: 'highlight' };

function rule(rule_id: string, conditions: Record<string, unknown>[], actions: unknown[], enabled = true): PushRule {
  return { rule_id, default: true, enabled, conditions, actions };
}

const match = (key: string, pattern: string) => ({ kind: 'event_match', key, pattern });

export function defaultPushRules(userId: string): PushRuleset {
  const localpart = userId.slice(1, userId.indexOf(':'));
  return {
    override: [
      rule('.m.rule.master', [], [], false),
      rule('.m.rule.suppress_notices', [match('content.msgtype', 'm.notice')], []),
      rule('.m.rule.invite_for_me', [match('type', 'm.room.member'), match('content.membership', 'invite'), match('state_key', userId)], [notify, soundDefault]),
      rule('.m.rule.member_event', [match('type', 'm.room.member')], []),
      rule('.m.rule.is_user_mention', [{ kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: userId }], [notify, soundDefault, highlight]),
      rule('.m.rule.contains_display_name', [{ kind: 'contains_display_name' }], [notify, soundDefault, highlight]),
      rule('.m.rule.is_room_mention', [{ kind: 'event_property_is', key: 'content.m\\.mentions.room', value: true }, { kind: 'sender_notification_permission', key: 'room' }], [notify, highlight]),
      rule('.m.rule.roomnotif', [{ kind: 'sender_notification_permission', key: 'room' }, match('content.body', '@room')], [notify, highlight]),
      rule('.m.rule.tombstone', [match('type', 'm.room.tombstone'), match('state_key', '')], [notify, highlight]),
      rule('.m.rule.reaction', [match('type', 'm.reaction')], []),
      rule('.m.rule.room.server_acl', [match('type', 'm.room.server_acl'), match('state_key', '')], []),
      rule('.m.rule.suppress_edits', [{ kind: 'event_property_is', key: 'content.m\\.relates_to.rel_type', value: 'm.replace' }], []),
    ],
    content: [{ rule_id: '.m.rule.contains_user_name', default: true, enabled: true, pattern: localpart, actions: [notify, soundDefault, highlight] }],
    room: [],
    sender: [],
    underride: [
      rule('.m.rule.call', [match('type', 'm.call.invite')], [notify, { set_tweak: 'sound', value: 'ring' }]),
      rule('.m.rule.encrypted_room_one_to_one', [{ kind: 'room_member_count', is: '2' }, match('type', 'm.room.encrypted')], [notify, soundDefault]),
      rule('.m.rule.room_one_to_one', [{ kind: 'room_member_count', is: '2' }, match('type', 'm.room.message')], [notify, soundDefault]),
      rule('.m.rule.message', [match('type', 'm.room.message')], [notify]),
      rule('.m.rule.encrypted', [match('type', 'm.room.encrypted')], [notify]),
    ],
  };
}
