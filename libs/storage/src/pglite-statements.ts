import { parse, protocol, type PGlite, type Results } from '@electric-sql/pglite';

/** Named statements kept prepared; beyond this the least recently used are closed. */
const MAX_PREPARED = 400;

/** PostgreSQL's "cached plan must not change result type" (a table changed under a prepared statement). */
const FEATURE_NOT_SUPPORTED = '0A000';

interface Prepared {
  name: string;
  /** The parameters' type oids, as PostgreSQL inferred them at Parse. */
  paramTypes: number[];
}

/**
 * Runs parameterised queries on PGlite as named prepared statements, one protocol call each.
 *
 * PGlite's own query() sends Parse, Describe, Bind, Describe, Execute and Sync as six calls into
 * the WASM backend and parses and plans the statement every time: measured at ~190-450 us of CPU
 * for a one-row select by primary key. Here a statement's text is parsed once (Parse + Describe
 * to learn its parameter types), then each run is Bind + Describe + Execute + Sync in one call:
 * ~75-110 us for the same select. This is what node-postgres does with named statements. Each
 * run is still planned for its parameters (plan_cache_mode in pglite-db.ts says why).
 *
 * The caller holds PGlite's mutexes (the methods run inside _runExclusiveQuery), so statements
 * never interleave with another caller's.
 */
export class PgliteStatements {
  private readonly prepared = new Map<string, Prepared>();
  /** Statements evicted from the map, closed with the next query outside a transaction. */
  private readonly toClose: string[] = [];
  private sequence = 0;

  constructor(private readonly pglite: PGlite) {}

  async query<Row>(sql: string, params: readonly unknown[], inTransaction: boolean): Promise<Results<Row>> {
    try {
      return await this.run<Row>(sql, params, inTransaction);
    } catch (err) {
      if ((err as { code?: string }).code !== FEATURE_NOT_SUPPORTED || !this.prepared.has(sql)) throw err;
      // A table changed shape under the statement (a migration after it was prepared): prepare
      // it again. Inside a transaction the error has aborted it, so only a lone query retries.
      this.forget(sql);
      if (inTransaction) throw err;
      return this.run<Row>(sql, params, inTransaction);
    }
  }

  private async run<Row>(sql: string, params: readonly unknown[], inTransaction: boolean): Promise<Results<Row>> {
    let statement = this.prepared.get(sql);
    if (statement) {
      // Most recently used last: the map's first entry is the one to evict.
      this.prepared.delete(sql);
      this.prepared.set(sql, statement);
    } else statement = await this.prepare(sql, inTransaction);
    const values = params.map((value, i) => {
      if (value === null || value === undefined) return null;
      const serialize = this.pglite.serializers[statement.paramTypes[i]!];
      return serialize ? serialize(value) : String(value);
    });
    const parts = [protocol.serialize.bind({ statement: statement.name, values: values as string[] }), protocol.serialize.describe({ type: 'P' }), protocol.serialize.execute({}), protocol.serialize.sync()];
    if (!inTransaction && this.toClose.length > 0) parts.unshift(...this.toClose.splice(0).map((name) => protocol.serialize.close({ type: 'S', name })));
    // Outside a transaction PGlite syncs its files after each statement; inside, COMMIT does.
    const messages = await this.pglite.execProtocolStream(concat(parts), { syncToFs: !inTransaction });
    return parse.parseResults(messages, this.pglite.parsers)[0] as Results<Row>;
  }

  private async prepare(sql: string, inTransaction: boolean): Promise<Prepared> {
    const name = `tessera_${++this.sequence}`;
    const messages = await this.pglite.execProtocolStream(
      concat([protocol.serialize.parse({ name, text: sql }), protocol.serialize.describe({ type: 'S', name }), protocol.serialize.sync()]),
      { syncToFs: !inTransaction },
    );
    const statement: Prepared = { name, paramTypes: parse.parseDescribeStatementResults(messages) };
    this.prepared.set(sql, statement);
    if (this.prepared.size > MAX_PREPARED) this.forget(this.prepared.keys().next().value!);
    return statement;
  }

  private forget(sql: string): void {
    const statement = this.prepared.get(sql);
    if (!statement) return;
    this.prepared.delete(sql);
    this.toClose.push(statement.name);
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
