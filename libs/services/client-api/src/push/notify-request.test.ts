import { describe, expect, it } from 'vitest';
import { notifyRequestBody, priorityOf, tweaksOf, type NotifyInput } from './notify-request.js';

const event = {
  type: 'm.room.message',
  sender: '@bob:example.org',
  room_id: '!room:example.org',
  content: { msgtype: 'm.text', body: 'hi' },
};

function input(overrides: Partial<NotifyInput> = {}): NotifyInput {
  return {
    event,
    eventId: '$event',
    roomId: '!room:example.org',
    actions: ['notify'],
    pusher: { userId: '@alice:example.org', appId: 'app', pushkey: 'key', data: { url: 'https://push.example.org/_matrix/push/v1/notify' }, createdTs: 1_700_000_123_456 },
    unread: 3,
    details: { senderDisplayName: 'Bob', roomName: 'Room', roomAlias: '#room:example.org' },
    ...overrides,
  };
}

describe('push gateway notify body', () => {
  it('turns set_tweak actions into tweaks; a highlight without a value is true', () => {
    expect(tweaksOf(['notify', { set_tweak: 'sound', value: 'default' }, { set_tweak: 'highlight' }])).toEqual({ sound: 'default', highlight: true });
    expect(tweaksOf(['notify', { set_tweak: 'highlight', value: false }, 'dont_notify', { other: 1 }])).toEqual({ highlight: false });
    expect(tweaksOf(['notify'])).toEqual({});
  });

  it('is high priority for sounds, highlights and encrypted events, else low', () => {
    expect(priorityOf('m.room.message', {})).toBe('low');
    expect(priorityOf('m.room.message', { highlight: false })).toBe('low');
    expect(priorityOf('m.room.message', { sound: 'default' })).toBe('high');
    expect(priorityOf('m.room.message', { highlight: true })).toBe('high');
    expect(priorityOf('m.room.encrypted', {})).toBe('high');
  });

  it('sends the full format with the event, room and sender fields, data minus url, pushkey_ts in seconds', () => {
    expect(notifyRequestBody(input({ actions: ['notify', { set_tweak: 'sound', value: 'bing' }] }))).toEqual({
      notification: {
        event_id: '$event',
        room_id: '!room:example.org',
        type: 'm.room.message',
        sender: '@bob:example.org',
        sender_display_name: 'Bob',
        room_name: 'Room',
        room_alias: '#room:example.org',
        content: { msgtype: 'm.text', body: 'hi' },
        prio: 'high',
        counts: { unread: 3 },
        devices: [{ app_id: 'app', pushkey: 'key', pushkey_ts: 1_700_000_123, data: {}, tweaks: { sound: 'bing' } }],
      },
    });
  });

  it('sends only event_id, room_id, prio, counts and devices for event_id_only, keeping format and custom data', () => {
    const pusher = { ...input().pusher, data: { url: 'https://push.example.org/_matrix/push/v1/notify', format: 'event_id_only', brand: 'x' } };
    expect(notifyRequestBody(input({ pusher, unread: 0 }))).toEqual({
      notification: {
        event_id: '$event',
        room_id: '!room:example.org',
        prio: 'low',
        counts: {},
        devices: [{ app_id: 'app', pushkey: 'key', pushkey_ts: 1_700_000_123, data: { format: 'event_id_only', brand: 'x' } }],
      },
    });
  });

  it('tells an invited user they are the target of a member event, and leaves out empty content', () => {
    const invite = { type: 'm.room.member', sender: '@bob:example.org', state_key: '@alice:example.org', content: { membership: 'invite' } };
    const body = notifyRequestBody(input({ event: invite, details: {} })).notification;
    expect(body.user_is_target).toBe(true);
    expect(body.content).toEqual({ membership: 'invite' });
    const redacted = notifyRequestBody(input({ event: { ...event, content: {} }, details: {} })).notification;
    expect(redacted).not.toHaveProperty('content');
    expect(redacted).not.toHaveProperty('user_is_target');
    expect(redacted).not.toHaveProperty('sender_display_name');
  });
});
