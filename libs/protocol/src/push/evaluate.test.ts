import { describe, expect, it } from 'vitest';
import { conditionMatches, evaluatePushRules, globRegex, splitPropertyPath, type PushContext } from './evaluate.js';
import { defaultPushRules, type PushRuleset } from './rules.js';

const me = '@alice:example.org';
const other = '@bob:example.org';
const room = '!room:example.org';

function ctx(over: Partial<PushContext> = {}): PushContext {
  return { userId: me, displayName: 'Alice Liddell', memberCount: 5, senderMayNotify: () => false, ...over };
}

function message(content: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'm.room.message', sender: other, room_id: room, event_id: '$e', content: { msgtype: 'm.text', ...content }, ...extra };
}

const defaults = (): PushRuleset => defaultPushRules(me);
const evaluate = (event: Record<string, unknown>, c = ctx(), rules = defaults()) => evaluatePushRules(rules, event, c);

describe('dot-separated property paths (spec appendix)', () => {
  it('splits on dots, unescapes \\. and \\\\, keeps other backslashes', () => {
    expect(splitPropertyPath('content.body')).toEqual(['content', 'body']);
    expect(splitPropertyPath('content.m\\.mentions.user_ids')).toEqual(['content', 'm.mentions', 'user_ids']);
    expect(splitPropertyPath('m\\x.y')).toEqual(['m\\x', 'y']);
    expect(splitPropertyPath('a\\\\.b')).toEqual(['a\\', 'b']);
    expect(splitPropertyPath('a\\\\\\.b')).toEqual(['a\\.b']);
  });
});

describe('conditions', () => {
  it('event_match: whole value, case-insensitive glob; absent or non-string never matches, even *', () => {
    const topic = { type: 'm.room.topic', state_key: '', sender: other, content: { topic: 'Lunch plans' } };
    const cond = (pattern: string) => ({ kind: 'event_match', key: 'content.topic', pattern });
    expect(conditionMatches(cond('lunc?*'), topic, ctx())).toBe(true);
    expect(conditionMatches(cond('LUNCH*'), topic, ctx())).toBe(true);
    expect(conditionMatches(cond('lunch'), topic, ctx())).toBe(false);
    expect(conditionMatches(cond('lunc?*'), { ...topic, content: { topic: ' lunch' } }, ctx())).toBe(false);
    expect(conditionMatches(cond('lunc?*'), { ...topic, content: { topic: 'lunc' } }, ctx())).toBe(false);
    expect(conditionMatches(cond('*'), { ...topic, content: { topic: null } }, ctx())).toBe(false);
    expect(conditionMatches(cond('*'), { ...topic, content: {} }, ctx())).toBe(false);
  });

  it('event_match on content.body matches between word boundaries', () => {
    const cond = { kind: 'event_match', key: 'content.body', pattern: 'ex*ple' };
    expect(conditionMatches(cond, message({ body: 'An example event.' }), ctx())).toBe(true);
    expect(conditionMatches(cond, message({ body: 'exple' }), ctx())).toBe(true);
    expect(conditionMatches(cond, message({ body: 'An exciting triple-whammy' }), ctx())).toBe(true);
    expect(conditionMatches(cond, message({ body: 'counterexample' }), ctx())).toBe(false);
  });

  it('event_property_is: exact, no type casting', () => {
    const create = { type: 'm.room.create', state_key: '', sender: other, content: { 'm.federate': true } };
    const cond = (value: unknown) => ({ kind: 'event_property_is', key: 'content.m\\.federate', value });
    expect(conditionMatches(cond(true), create, ctx())).toBe(true);
    expect(conditionMatches(cond('true'), create, ctx())).toBe(false);
    expect(conditionMatches(cond(1), create, ctx())).toBe(false);
    expect(conditionMatches(cond(null), { ...create, content: { 'm.federate': null } }, ctx())).toBe(true);
    expect(conditionMatches(cond(null), { ...create, content: {} }, ctx())).toBe(false);
  });

  it('event_property_contains: an array holding the exact value', () => {
    const alias = { type: 'm.room.canonical_alias', state_key: '', sender: other, content: { alt_aliases: ['#somewhere:example.org', '#myroom:example.com'] } };
    const cond = (value: unknown) => ({ kind: 'event_property_contains', key: 'content.alt_aliases', value });
    expect(conditionMatches(cond('#myroom:example.com'), alias, ctx())).toBe(true);
    expect(conditionMatches(cond(':example.com'), alias, ctx())).toBe(false);
    expect(conditionMatches(cond('#myroom:example.com'), { ...alias, content: { alt_aliases: '#myroom:example.com' } }, ctx())).toBe(false);
  });

  it('room_member_count with and without a prefix; malformed never matches', () => {
    const c = (is: string, memberCount: number) => conditionMatches({ kind: 'room_member_count', is }, message({ body: 'x' }), ctx({ memberCount }));
    expect(c('2', 2)).toBe(true);
    expect(c('2', 3)).toBe(false);
    expect(c('==3', 3)).toBe(true);
    expect(c('<3', 2)).toBe(true);
    expect(c('<3', 3)).toBe(false);
    expect(c('>=3', 3)).toBe(true);
    expect(c('<=10', 11)).toBe(false);
    expect(c('>1', 2)).toBe(true);
    expect(c('two', 2)).toBe(false);
  });

  it('contains_display_name: whole words, case-insensitive, never for an empty name', () => {
    const cond = { kind: 'contains_display_name' };
    expect(conditionMatches(cond, message({ body: 'hi alice liddell!' }), ctx())).toBe(true);
    expect(conditionMatches(cond, message({ body: 'hi Alice Liddells' }), ctx())).toBe(false);
    expect(conditionMatches(cond, message({ body: 'anything' }), ctx({ displayName: '' }))).toBe(false);
    expect(conditionMatches(cond, message({ body: 'a (b) c' }), ctx({ displayName: '(b)' }))).toBe(true);
  });

  it('sender_notification_permission asks the context for its key; unknown kinds never match', () => {
    const asked: string[] = [];
    const c = ctx({ senderMayNotify: (key) => (asked.push(key), key === 'room') });
    expect(conditionMatches({ kind: 'sender_notification_permission', key: 'room' }, message({ body: 'x' }), c)).toBe(true);
    expect(conditionMatches({ kind: 'sender_notification_permission', key: 'other' }, message({ body: 'x' }), c)).toBe(false);
    expect(asked).toEqual(['room', 'other']);
    expect(conditionMatches({ kind: 'org.example.unknown' }, message({ body: 'x' }), c)).toBe(false);
  });

  it('globs: ? is one character, regex characters are literal', () => {
    expect(globRegex('a.b', false).test('axb')).toBe(false);
    expect(globRegex('a?b', false).test('axb')).toBe(true);
    expect(globRegex('[x]', false).test('[X]')).toBe(true);
  });
});

describe('the spec default rules', () => {
  it('a plain message notifies without highlight; in a 1:1 room through room_one_to_one', () => {
    expect(evaluate(message({ body: 'hello' }))).toMatchObject({ ruleId: 'underride/.m.rule.message', notify: true, highlight: false });
    expect(evaluate(message({ body: 'hello' }), ctx({ memberCount: 2 }))).toMatchObject({ ruleId: 'underride/.m.rule.room_one_to_one', notify: true, highlight: false });
  });

  it('encrypted events notify (one_to_one in 2-member rooms)', () => {
    const enc = { type: 'm.room.encrypted', sender: other, room_id: room, content: { algorithm: 'm.megolm.v1.aes-sha2', ciphertext: 'x' } };
    expect(evaluate(enc)).toMatchObject({ ruleId: 'underride/.m.rule.encrypted', notify: true });
    expect(evaluate(enc, ctx({ memberCount: 2 }))).toMatchObject({ ruleId: 'underride/.m.rule.encrypted_room_one_to_one', notify: true });
  });

  it('m.mentions.user_ids naming the user highlights; naming someone else does not', () => {
    expect(evaluate(message({ body: 'hey', 'm.mentions': { user_ids: [me] } }))).toMatchObject({ ruleId: 'override/.m.rule.is_user_mention', notify: true, highlight: true });
    expect(evaluate(message({ body: 'hey', 'm.mentions': { user_ids: [other] } }))).toMatchObject({ ruleId: 'underride/.m.rule.message', highlight: false });
  });

  it('legacy display name and user name rules apply only without m.mentions', () => {
    expect(evaluate(message({ body: 'Alice Liddell, look' }))).toMatchObject({ ruleId: 'override/.m.rule.contains_display_name', highlight: true });
    expect(evaluate(message({ body: 'ping alice' }), ctx({ displayName: undefined }))).toMatchObject({ ruleId: 'content/.m.rule.contains_user_name', highlight: true });
    expect(evaluate(message({ body: 'Alice Liddell, look', 'm.mentions': {} }))).toMatchObject({ ruleId: 'underride/.m.rule.message', highlight: false });
    expect(evaluate(message({ body: 'ping alice', 'm.mentions': {} }), ctx({ displayName: undefined }))).toMatchObject({ highlight: false });
  });

  it('@room highlights only when the sender has the room notification level', () => {
    const roomMention = message({ body: 'all: news', 'm.mentions': { room: true } });
    expect(evaluate(roomMention, ctx({ senderMayNotify: (k) => k === 'room' }))).toMatchObject({ ruleId: 'override/.m.rule.is_room_mention', highlight: true });
    expect(evaluate(roomMention)).toMatchObject({ ruleId: 'underride/.m.rule.message', highlight: false });
    const legacy = message({ body: '@room news' });
    expect(evaluate(legacy, ctx({ senderMayNotify: () => true }))).toMatchObject({ ruleId: 'override/.m.rule.roomnotif', highlight: true });
    expect(evaluate(legacy)).toMatchObject({ highlight: false });
  });

  it('notices, reactions, edits, member events and server ACLs do not notify; invites for me and tombstones do', () => {
    expect(evaluate(message({ msgtype: 'm.notice', body: 'bot' }))).toMatchObject({ ruleId: 'override/.m.rule.suppress_notices', notify: false });
    expect(evaluate({ type: 'm.reaction', sender: other, content: { 'm.relates_to': { rel_type: 'm.annotation', event_id: '$x', key: '👍' } } })).toMatchObject({ notify: false });
    expect(evaluate(message({ body: '* fixed', 'm.relates_to': { rel_type: 'm.replace', event_id: '$x' } }))).toMatchObject({ ruleId: 'override/.m.rule.suppress_edits', notify: false });
    expect(evaluate({ type: 'm.room.member', state_key: other, sender: other, content: { membership: 'join' } })).toMatchObject({ ruleId: 'override/.m.rule.member_event', notify: false });
    expect(evaluate({ type: 'm.room.server_acl', state_key: '', sender: other, content: { allow: ['*'] } })).toMatchObject({ ruleId: 'override/.m.rule.room.server_acl', notify: false });
    expect(evaluate({ type: 'm.room.member', state_key: me, sender: other, content: { membership: 'invite' } })).toMatchObject({ ruleId: 'override/.m.rule.invite_for_me', notify: true, highlight: false });
    expect(evaluate({ type: 'm.room.tombstone', state_key: '', sender: other, content: { body: 'moved', replacement_room: '!new:x' } })).toMatchObject({ notify: true, highlight: true });
    expect(evaluate({ type: 'm.call.invite', sender: other, content: {} })).toMatchObject({ ruleId: 'underride/.m.rule.call', notify: true });
    expect(evaluate({ type: 'org.example.custom', sender: other, content: {} })).toEqual({ actions: [], notify: false, highlight: false });
  });

  it('the user own events never notify', () => {
    expect(evaluate(message({ body: 'Alice Liddell' }, { sender: me }))).toMatchObject({ notify: false, highlight: false });
  });

  it('the master rule, when enabled, silences everything; disabled rules are skipped', () => {
    const rules = defaults();
    rules.override[0]!.enabled = true;
    expect(evaluate(message({ body: 'hi', 'm.mentions': { user_ids: [me] } }), ctx(), rules)).toMatchObject({ ruleId: 'override/.m.rule.master', notify: false });
    const noMessage = defaults();
    noMessage.underride.find((r) => r.rule_id === '.m.rule.message')!.enabled = false;
    expect(evaluate(message({ body: 'hi' }), ctx(), noMessage)).toMatchObject({ notify: false });
  });

  it('room and sender rules match by rule id, before underride; dont_notify is an empty action list', () => {
    const rules = defaults();
    rules.room.push({ rule_id: room, default: false, enabled: true, actions: ['dont_notify'] });
    expect(evaluate(message({ body: 'hi' }), ctx(), rules)).toEqual({ ruleId: `room/${room}`, actions: [], notify: false, highlight: false });
    const bySender = defaults();
    bySender.sender.push({ rule_id: other, default: false, enabled: true, actions: ['notify', { set_tweak: 'highlight', value: true }] });
    expect(evaluate(message({ body: 'hi' }), ctx(), bySender)).toMatchObject({ ruleId: `sender/${other}`, notify: true, highlight: true });
  });

  it('content rules match the body by word; user override rules come after master, before the defaults', () => {
    const rules = defaults();
    rules.content.unshift({ rule_id: 'cake', default: false, enabled: true, pattern: 'cake*lie', actions: ['notify', { set_tweak: 'highlight', value: false }] });
    expect(evaluate(message({ body: 'the cake is a lie' }), ctx(), rules)).toMatchObject({ ruleId: 'content/cake', notify: true, highlight: false });
    const override = defaults();
    override.override.splice(1, 0, { rule_id: 'beer', default: false, enabled: true, conditions: [{ kind: 'event_match', key: 'content.body', pattern: 'beer' }, { kind: 'room_member_count', is: '<=10' }], actions: ['notify', { set_tweak: 'highlight' }] });
    expect(evaluate(message({ body: 'beer time', msgtype: 'm.notice' }), ctx(), override)).toMatchObject({ ruleId: 'override/beer', highlight: true });
    expect(evaluate(message({ body: 'beer time' }), ctx({ memberCount: 11 }), override)).toMatchObject({ ruleId: 'underride/.m.rule.message' });
  });
});
