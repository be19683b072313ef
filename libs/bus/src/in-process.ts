import { AsyncResource } from 'node:async_hooks';
import { BUS_CLOSED, BusError, BusNoRespondersError, BusTimeoutError, fromWireError, toWireError } from './errors.js';
import { assertSubject, decodeJson, encodeJson, jsonCopy } from './json.js';
import {
  DEFAULT_REQUEST_TIMEOUT_MS,
  type BusTransport,
  type DurableConsumerOptions,
  type HandlerOptions,
  type RequestOptions,
  type Subscription,
} from './transport.js';

export interface InProcessBusOptions {
  /** Where failures of subscribe/consume handlers are reported (they have no caller). Default console.error. */
  onHandlerError?: (error: unknown, subject: string) => void;
}

type AnyHandler = (payload: unknown) => unknown;

/** Durable messages kept for a subject nobody consumes yet. */
const MAX_UNCLAIMED = 10_000;

interface Member {
  queue: string | undefined;
  fn: AnyHandler;
  /** Runs the handler in the async context of its subscriber, not of the publisher, as over NATS. */
  scope: AsyncResource;
  /** subscribe(): messages one at a time, in order. */
  chain: Promise<void>;
  active: boolean;
}

interface DurableMessage {
  payload: unknown;
  deliveries: number;
}

interface DurableMember {
  fn: (payload: unknown) => Promise<void>;
  scope: AsyncResource;
  busy: boolean;
  active: boolean;
}

interface DurableGroup {
  subject: string;
  ready: DurableMessage[];
  members: DurableMember[];
  next: number;
  options: Required<Omit<DurableConsumerOptions, 'durableName'>>;
}

/**
 * Groups members by queue: a member without a queue is a group of its own. From each group
 * one member is chosen, round robin.
 */
class Fanout {
  private readonly members = new Map<string, Member[]>();
  private readonly turns = new Map<string, number>();

  add(subject: string, member: Member): void {
    const list = this.members.get(subject) ?? [];
    list.push(member);
    this.members.set(subject, list);
  }

  remove(subject: string, member: Member): void {
    member.active = false;
    const list = (this.members.get(subject) ?? []).filter((m) => m !== member);
    if (list.length === 0) this.members.delete(subject);
    else this.members.set(subject, list);
  }

  pick(subject: string): Member[] {
    const chosen: Member[] = [];
    const groups = new Map<string, Member[]>();
    for (const m of this.members.get(subject) ?? []) {
      if (m.queue === undefined) chosen.push(m);
      else groups.set(m.queue, [...(groups.get(m.queue) ?? []), m]);
    }
    for (const [queue, list] of groups) {
      const key = `${subject}\u0000${queue}`;
      const turn = this.turns.get(key) ?? 0;
      this.turns.set(key, turn + 1);
      chosen.push(list[turn % list.length]!);
    }
    return chosen;
  }

  all(): Member[] {
    return [...this.members.values()].flat();
  }
}

class InProcessBus implements BusTransport {
  private readonly handlers = new Fanout();
  private readonly subscribers = new Fanout();
  private readonly durableLogs = new Map<string, Map<string, DurableGroup>>();
  /** Messages published durably before anyone consumes the subject wait here for the first group. */
  private readonly unclaimed = new Map<string, DurableMessage[]>();
  private readonly running = new Set<Promise<unknown>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly onHandlerError: (error: unknown, subject: string) => void) {}

  private assertOpen(): void {
    if (this.closed) throw new BusError(BUS_CLOSED, 'the bus is closed');
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.running.add(promise);
    void promise.then(
      () => this.running.delete(promise),
      () => this.running.delete(promise),
    );
    return promise;
  }

  async request<Req, Res>(subject: string, payload: Req, options: RequestOptions = {}): Promise<Res> {
    assertSubject(subject);
    this.assertOpen();
    const message = jsonCopy(payload, subject);
    const chosen = this.handlers.pick(subject);
    if (chosen.length === 0) throw new BusNoRespondersError(subject);
    const timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;

    // Like NATS: every chosen handler runs, the first reply wins.
    const replies = chosen.map((member) =>
      this.track(
        (async () => {
          await Promise.resolve(); // never run a handler inside the caller's tick
          return member.scope.runInAsyncScope(member.fn, null, message);
        })(),
      ).then(
        (result) => ({ ok: true as const, result: jsonCopy(result, subject) }),
        (error: unknown) => ({ ok: false as const, error: toWireError(error, subject) }),
      ),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new BusTimeoutError(subject, timeoutMs)), timeoutMs);
    });
    try {
      const reply = await Promise.race([...replies, timeout]);
      if (!reply.ok) throw fromWireError(reply.error);
      return reply.result as Res;
    } finally {
      clearTimeout(timer);
    }
  }

  async handle<Req, Res>(subject: string, handler: (payload: Req) => Promise<Res>, options: HandlerOptions = {}): Promise<Subscription> {
    assertSubject(subject);
    this.assertOpen();
    const member = this.member(handler as AnyHandler, options.queue);
    this.handlers.add(subject, member);
    return { unsubscribe: async () => this.handlers.remove(subject, member) };
  }

  async publish<T>(subject: string, payload: T): Promise<void> {
    assertSubject(subject);
    this.assertOpen();
    // Encoded once (a payload that is not JSON fails here, at the publisher, as over NATS);
    // each subscriber decodes its own copy, as each NATS subscriber would.
    const text = encodeJson(payload, subject);
    for (const member of this.subscribers.pick(subject)) {
      member.chain = this.track(
        member.chain.then(async () => {
          if (!member.active) return;
          try {
            await member.scope.runInAsyncScope(member.fn, null, decodeJson(text, subject));
          } catch (error) {
            this.onHandlerError(error, subject);
          }
        }),
      );
    }
  }

  async subscribe<T>(subject: string, handler: (payload: T) => void | Promise<void>, options: HandlerOptions = {}): Promise<Subscription> {
    assertSubject(subject);
    this.assertOpen();
    const member = this.member(handler as AnyHandler, options.queue);
    this.subscribers.add(subject, member);
    return { unsubscribe: async () => this.subscribers.remove(subject, member) };
  }

  async publishDurable<T>(subject: string, payload: T): Promise<void> {
    assertSubject(subject);
    this.assertOpen();
    const message = jsonCopy(payload, subject);
    const groups = this.durableLogs.get(subject);
    if (!groups || groups.size === 0) {
      const waiting = this.unclaimed.get(subject) ?? [];
      waiting.push({ payload: message, deliveries: 0 });
      // Bounded like a JetStream stream's limits: nobody consuming must not grow memory forever.
      if (waiting.length > MAX_UNCLAIMED) {
        waiting.shift();
        this.onHandlerError(new Error(`more than ${MAX_UNCLAIMED} durable messages wait for a consumer; the oldest was dropped`), subject);
      }
      this.unclaimed.set(subject, waiting);
      return;
    }
    for (const group of groups.values()) {
      group.ready.push({ payload: message, deliveries: 0 });
      this.pump(group);
    }
  }

  async consumeDurable<T>(subject: string, handler: (payload: T) => Promise<void>, options: DurableConsumerOptions): Promise<Subscription> {
    assertSubject(subject);
    assertSubject(options.durableName, 'durable name');
    this.assertOpen();
    const groups = this.durableLogs.get(subject) ?? new Map<string, DurableGroup>();
    this.durableLogs.set(subject, groups);
    let group = groups.get(options.durableName);
    if (!group) {
      group = {
        subject,
        ready: this.unclaimed.get(subject) ?? [],
        members: [],
        next: 0,
        options: { ackWaitMs: options.ackWaitMs ?? 30_000, maxDeliver: options.maxDeliver ?? 10, retryDelayMs: options.retryDelayMs ?? 1000 },
      };
      this.unclaimed.delete(subject);
      groups.set(options.durableName, group);
    }
    const member: DurableMember = { fn: handler as (p: unknown) => Promise<void>, scope: new AsyncResource('tessera.bus.durable'), busy: false, active: true };
    group.members.push(member);
    this.pump(group);
    const theGroup = group;
    return {
      unsubscribe: async () => {
        member.active = false;
        // The group (and its position) stays: a later consumer with the same name resumes it.
        theGroup.members = theGroup.members.filter((m) => m !== member);
      },
    };
  }

  /** Hands ready messages to idle members, round robin; each member takes one at a time. */
  private pump(group: DurableGroup): void {
    while (group.ready.length > 0 && !this.closed) {
      const idle = group.members.filter((m) => m.active && !m.busy);
      if (idle.length === 0) return;
      const member = idle[group.next++ % idle.length]!;
      const message = group.ready.shift()!;
      member.busy = true;
      message.deliveries++;
      this.track(
        (async () => {
          try {
            await member.scope.runInAsyncScope(member.fn, null, jsonCopy(message.payload, group.subject));
          } catch (error) {
            this.onHandlerError(error, group.subject);
            if (message.deliveries < group.options.maxDeliver) this.redeliverLater(group, message);
          } finally {
            member.busy = false;
            this.pump(group);
          }
        })(),
      );
    }
  }

  private redeliverLater(group: DurableGroup, message: DurableMessage): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      group.ready.push(message);
      this.pump(group);
    }, group.options.retryDelayMs);
    this.timers.add(timer);
  }

  private member(fn: AnyHandler, queue: string | undefined): Member {
    if (queue !== undefined) assertSubject(queue, 'queue group');
    return { queue, fn, scope: new AsyncResource('tessera.bus.handler'), chain: Promise.resolve(), active: true };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    for (const m of [...this.handlers.all(), ...this.subscribers.all()]) m.active = false;
    // Let running handlers finish (their replies still reach their callers).
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }
}

/** The embedded default's bus: every service in this process, no network, same semantics as NATS. */
export function createInProcessBus(options: InProcessBusOptions = {}): BusTransport {
  return new InProcessBus(options.onHandlerError ?? ((error, subject) => console.error(`bus: handler for ${subject} failed`, error)));
}
