import { describe, expect, it } from 'vitest';
import { parseRequiredState, requiredStateExpanded, wantsState, type RequiredState } from './required-state.js';

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
