import { describe, expect, it } from 'vitest';
import { parseRequiredState, requiredStateDelta, requiredStateExpanded, wantsState, type RequiredState } from './required-state.js';

const me = '@me:hs';
const none = new Set<string>();
const wants = (config: RequiredState, type: string, key: string, lazy: ReadonlySet<string> = none) => wantsState([config], type, key, me, lazy);

describe('required_state', () => {
  it('matches exact pairs, wildcard state keys, wildcard types and everything', () => {
    const exact = parseRequiredState([['m.room.name', '']], 'x');
    expect(wants(exact, 'm.room.name', '')).toBe(true);
    expect(wants(exact, 'm.room.topic', '')).toBe(false);
    const keys = parseRequiredState([['m.space.child', '*']], 'x');
    expect(wants(keys, 'm.space.child', '!a:hs')).toBe(true);
    expect(wants(keys, 'm.space.parent', '!a:hs')).toBe(false);
    const types = parseRequiredState([['*', '']], 'x');
    expect(wants(types, 'm.room.topic', '')).toBe(true);
    expect(wants(types, 'm.room.member', me)).toBe(false);
    const all = parseRequiredState([['*', '*']], 'x');
    expect(wants(all, 'm.room.member', '@anyone:hs')).toBe(true);
  });

  it('$ME is the requesting user; $LAZY the members given (only for m.room.member)', () => {
    const config = parseRequiredState([['m.room.member', '$ME'], ['m.room.member', '$LAZY']], 'x');
    expect(config.lazyMembers).toBe(true);
    expect(wants(config, 'm.room.member', me)).toBe(true);
    expect(wants(config, 'm.room.member', '@other:hs')).toBe(false);
    expect(wants(config, 'm.room.member', '@other:hs', new Set(['@other:hs']))).toBe(true);
    // $LAZY of another type is a literal state key.
    const literal = parseRequiredState([['org.example', '$LAZY']], 'x');
    expect(literal.lazyMembers).toBe(false);
    expect(wants(literal, 'org.example', '$LAZY')).toBe(true);
  });

  it('reads the MSC object form: include, exclude (not applied to lazy members), lazy_members', () => {
    const config = parseRequiredState({ include: [{}], exclude: [{ type: 'm.room.member' }, { type: 'm.room.create', state_key: '' }], lazy_members: true }, 'x');
    expect(wants(config, 'm.room.topic', '')).toBe(true);
    expect(wants(config, 'm.room.create', '')).toBe(false);
    expect(wants(config, 'm.room.member', '@a:hs')).toBe(false);
    expect(wants(config, 'm.room.member', '@a:hs', new Set(['@a:hs']))).toBe(true);
    expect(wants(parseRequiredState({ include: [{ state_key: '' }] }, 'x'), 'anything', '')).toBe(true);
  });

  it('combines configs as a union', () => {
    const a = parseRequiredState([['m.room.name', '']], 'x');
    const b = parseRequiredState([['m.room.topic', '']], 'x');
    expect(wantsState([a, b], 'm.room.topic', '', me, none)).toBe(true);
    expect(wantsState([a, b], 'm.room.avatar', '', me, none)).toBe(false);
  });

  it('rejects malformed entries', () => {
    expect(() => parseRequiredState([['m.room.name']], 'x')).toThrow(/pair/);
    expect(() => parseRequiredState([[1, '']], 'x')).toThrow(/pair/);
    expect(() => parseRequiredState('all', 'x')).toThrow();
    expect(() => parseRequiredState({ include: [{ type: 3 }] }, 'x')).toThrow();
  });

  it('tells an expansion (new pattern, dropped exclude, lazy turned on) from a narrowing', () => {
    const base = [parseRequiredState([['m.room.name', '']], 'x')];
    expect(requiredStateExpanded(base, base)).toBe(false);
    expect(requiredStateExpanded(base, [parseRequiredState([], 'x')])).toBe(false);
    expect(requiredStateExpanded(base, [parseRequiredState([['m.room.name', ''], ['m.room.topic', '']], 'x')])).toBe(true);
    expect(requiredStateExpanded(base, [parseRequiredState([['m.room.name', ''], ['m.room.member', '$LAZY']], 'x')])).toBe(true);
    const excluding = [parseRequiredState({ include: [{}], exclude: [{ type: 'm.room.member' }] }, 'x')];
    expect(requiredStateExpanded(excluding, [parseRequiredState({ include: [{}] }, 'x')])).toBe(true);
  });
});

describe('requiredStateDelta', () => {
  const k = (type: string, stateKey: string) => `${type}\u0000${stateKey}`;
  const all = () => true;

  it('sends what is wanted and differs from what was sent; a piece gone from the room is a StateStub', () => {
    const previous = new Map([
      [k('m.room.name', ''), '$name1'],
      [k('m.room.topic', ''), '$topic'],
      [k('org.example.gone', 'x'), '$gone'],
    ]);
    const current = [
      ['m.room.name', '', '$name2'],
      ['m.room.topic', '', '$topic'],
      ['m.room.avatar', '', '$avatar'],
    ] as const;
    const delta = requiredStateDelta(previous, current, all);
    expect(delta.send).toEqual(['$name2', '$avatar']);
    expect(delta.removed).toEqual([{ type: 'org.example.gone', state_key: 'x' }]);
    expect([...delta.state.entries()]).toEqual([
      [k('m.room.name', ''), '$name2'],
      [k('m.room.topic', ''), '$topic'],
      [k('m.room.avatar', ''), '$avatar'],
    ]);
    // The record given is not changed.
    expect(previous.get(k('m.room.name', ''))).toBe('$name1');
  });

  it('in full (no previous record) sends every wanted piece and no stubs; a piece no longer asked for is kept, not stubbed', () => {
    const current = [
      ['m.room.name', '', '$name'],
      ['m.room.member', '@a:x', '$a'],
    ] as const;
    expect(requiredStateDelta(undefined, current, (type) => type === 'm.room.name')).toEqual({ state: new Map([[k('m.room.name', ''), '$name']]), send: ['$name'], removed: [] });
    const narrowed = requiredStateDelta(new Map([[k('m.room.member', '@a:x'), '$a']]), current, (type) => type === 'm.room.name');
    expect(narrowed.removed).toEqual([]);
    expect(narrowed.send).toEqual(['$name']);
  });
});

