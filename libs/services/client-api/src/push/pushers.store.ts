import type { Queryable } from '@tessera/storage';

/** A pusher as GET /pushers shows it (spec "Pusher"). */
export interface PusherView {
  pushkey: string;
  kind: string;
  app_id: string;
  app_display_name: string;
  device_display_name: string;
  profile_tag?: string;
  lang: string;
  data: Record<string, unknown>;
}

interface PusherRow {
  pushkey: string;
  kind: string;
  app_id: string;
  app_display_name: string;
  device_display_name: string;
  profile_tag: string | null;
  lang: string;
  data: Record<string, unknown> | string;
}

function view(row: PusherRow): PusherView {
  const pusher: PusherView = {
    pushkey: row.pushkey,
    kind: row.kind,
    app_id: row.app_id,
    app_display_name: row.app_display_name,
    device_display_name: row.device_display_name,
    lang: row.lang,
    data: typeof row.data === 'string' ? (JSON.parse(row.data) as Record<string, unknown>) : row.data,
  };
  if (row.profile_tag !== null) pusher.profile_tag = row.profile_tag;
  return pusher;
}

/** The pushers table (client-api's; migration client_api_pushers_0001_pushers). */
export const pushersStore = {
  async list(db: Queryable, userId: string): Promise<PusherView[]> {
    const { rows } = await db.query<PusherRow>(
      `SELECT pushkey, kind, app_id, app_display_name, device_display_name, profile_tag, lang, data
         FROM pushers WHERE user_id = $1 ORDER BY created_ts, app_id, pushkey`,
      [userId],
    );
    return rows.map(view);
  },

  /**
   * Creates or replaces the user's pusher for (app_id, pushkey). A replaced pusher keeps the
   * device it was made on (as Synapse: one device may update another's pusher, which still
   * goes when that other device logs out).
   */
  async upsert(db: Queryable, userId: string, deviceId: string, pusher: PusherView): Promise<void> {
    await db.query(
      `INSERT INTO pushers (user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data, device_id, created_ts)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
       ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET
         kind = EXCLUDED.kind, app_display_name = EXCLUDED.app_display_name, device_display_name = EXCLUDED.device_display_name,
         profile_tag = EXCLUDED.profile_tag, lang = EXCLUDED.lang, data = EXCLUDED.data`,
      [
        userId,
        pusher.app_id,
        pusher.pushkey,
        pusher.kind,
        pusher.app_display_name,
        pusher.device_display_name,
        pusher.profile_tag ?? null,
        pusher.lang,
        JSON.stringify(pusher.data),
        deviceId,
        Date.now(),
      ],
    );
  },

  async delete(db: Queryable, userId: string, appId: string, pushkey: string): Promise<void> {
    await db.query('DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3', [userId, appId, pushkey]);
  },

  /** `append: false`: the (app_id, pushkey) now belongs to this user only. */
  async deleteOtherUsers(db: Queryable, userId: string, appId: string, pushkey: string): Promise<void> {
    await db.query('DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3', [appId, pushkey, userId]);
  },
};
