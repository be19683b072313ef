import { Inject, Injectable } from '@nestjs/common';
import type { Db } from '@tessera/storage';
import { forbidden, notFound } from '../errors.js';
import { CLIENT_API_DB } from '../tokens.js';
import { validateFilter } from './filter-validation.js';

/** Stored /sync filters. Ids are numbers as strings; a filter is only visible to its owner. */
@Injectable()
export class FiltersService {
  constructor(@Inject(CLIENT_API_DB) private readonly db: Db) {}

  async create(requesterId: string, userId: string, body: unknown): Promise<{ filter_id: string }> {
    if (requesterId !== userId) throw forbidden('You can only create filters for yourself');
    const filter = validateFilter(body);
    const { rows } = await this.db.query<{ filter_id: number }>('INSERT INTO filters (user_id, filter) VALUES ($1, $2) RETURNING filter_id', [userId, JSON.stringify(filter)]);
    return { filter_id: String(rows[0].filter_id) };
  }

  async get(requesterId: string, userId: string, filterId: string): Promise<Record<string, unknown>> {
    if (requesterId !== userId) throw forbidden('You can only read your own filters');
    const filter = await this.find(userId, filterId);
    if (!filter) throw notFound(`No filter ${filterId}`);
    return filter;
  }

  /** For /sync's `filter` parameter: the stored filter, or undefined when the id is unknown. */
  async find(userId: string, filterId: string): Promise<Record<string, unknown> | undefined> {
    if (!/^\d{1,15}$/.test(filterId)) return undefined;
    const { rows } = await this.db.query<{ filter: Record<string, unknown> }>('SELECT filter FROM filters WHERE user_id = $1 AND filter_id = $2', [userId, Number(filterId)]);
    return rows[0]?.filter;
  }
}
