/**
 * The body of POST /_matrix/push/v1/notify for one event and one pusher (spec v1.16 Push
 * Gateway API, and Client-Server "Push notifications"). Pure: what it needs comes in.
 *
 * - devices: the one pusher, with its `data` minus `url` (spec: "Servers MUST forward the
 *   entire content including `format` and any custom keys but excluding `url`"), pushkey_ts
 *   in seconds, and the tweaks the matching push rule set (sound, highlight, ...).
 * - data.format "event_id_only": only event_id, room_id, counts and devices (the spec's
 *   required fields for that format) and prio, as Synapse sends; otherwise every event field
 *   the spec lists that we know: type, sender, sender_display_name, room_name, room_alias,
 *   user_is_target (member events), content.
 * - prio: "high" when the rules set a sound or a highlight, or for encrypted events (whose
 *   rules could not see the content), else "low", as Synapse.
 * - counts: zero counts are omitted (spec). missed_calls is not sent: no missed-call count is
 *   kept (Synapse does not send it either).
 */
export interface PusherTarget {
  userId: string;
  appId: string;
  pushkey: string;
  data: Record<string, unknown>;
  /** When the pusher was set (ms). */
  createdTs: number;
}

/** What the full format tells about the event's room and sender. */
export interface EventDetails {
  senderDisplayName?: string;
  roomName?: string;
  roomAlias?: string;
}

export interface NotifyInput {
  event: Record<string, unknown>;
  eventId: string;
  roomId: string;
  /** The matching rule's actions (PushEvaluation.actions). */
  actions: readonly unknown[];
  pusher: PusherTarget;
  /** The user's unread notification count over all their joined rooms. */
  unread: number;
  details: EventDetails;
}

/** set_tweak actions as a tweaks object; a highlight tweak without a value means true (spec "Actions"). */
export function tweaksOf(actions: readonly unknown[]): Record<string, unknown> {
  const tweaks: Record<string, unknown> = {};
  for (const a of actions) {
    if (typeof a !== 'object' || a === null || Array.isArray(a)) continue;
    const { set_tweak: name, value } = a as Record<string, unknown>;
    if (typeof name !== 'string') continue;
    if (value !== undefined) tweaks[name] = value;
    else if (name === 'highlight') tweaks[name] = true;
  }
  return tweaks;
}

export function priorityOf(eventType: unknown, tweaks: Record<string, unknown>): 'high' | 'low' {
  const sound = tweaks.sound !== undefined && tweaks.sound !== null && tweaks.sound !== false;
  return eventType === 'm.room.encrypted' || tweaks.highlight === true || sound ? 'high' : 'low';
}

export function isEventIdOnly(data: Record<string, unknown>): boolean {
  return data.format === 'event_id_only';
}

export function notifyRequestBody(input: NotifyInput): { notification: Record<string, unknown> } {
  const { event, pusher } = input;
  const tweaks = tweaksOf(input.actions);
  const { url: _url, ...data } = pusher.data;
  const device: Record<string, unknown> = {
    app_id: pusher.appId,
    pushkey: pusher.pushkey,
    pushkey_ts: Math.floor(pusher.createdTs / 1000),
    data,
  };
  if (Object.keys(tweaks).length > 0) device.tweaks = tweaks;
  const counts: Record<string, number> = {};
  if (input.unread > 0) counts.unread = input.unread;

  const notification: Record<string, unknown> = { event_id: input.eventId, room_id: input.roomId };
  if (!isEventIdOnly(pusher.data)) {
    notification.type = event.type;
    notification.sender = event.sender;
    const { senderDisplayName, roomName, roomAlias } = input.details;
    if (senderDisplayName) notification.sender_display_name = senderDisplayName;
    if (roomName) notification.room_name = roomName;
    if (roomAlias) notification.room_alias = roomAlias;
    if (event.type === 'm.room.member' && typeof event.state_key === 'string') notification.user_is_target = event.state_key === pusher.userId;
    const content = event.content;
    if (typeof content === 'object' && content !== null && Object.keys(content).length > 0) notification.content = content;
  }
  notification.prio = priorityOf(event.type, tweaks);
  notification.counts = counts;
  notification.devices = [device];
  return { notification };
}
