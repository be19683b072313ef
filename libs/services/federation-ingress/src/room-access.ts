/**
 * Who may ask about a room: server ACLs (m.room.server_acl, spec "Server Access Control
 * Lists") and, for the endpoints that read a room's history, membership of the asking server.
 */
import { MatrixError } from '@tessera/http';
import { getCurrentStateEvent, getJoinedServers, getRoom, isRoomHeld, type Queryable, type StoredRoom } from '@tessera/storage';

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, 'i');
}

/** Whether the ACL content lets `serverName` take part (spec algorithm, port excluded from matching). */
export function serverAllowedByAcl(content: Record<string, unknown>, serverName: string): boolean {
  const host = serverName.startsWith('[') ? serverName.slice(0, serverName.indexOf(']') + 1) : serverName.replace(/:\d+$/, '');
  const isIpLiteral = /^\d+\.\d+\.\d+\.\d+$/.test(host) || host.startsWith('[');
  if (isIpLiteral && content.allow_ip_literals === false) return false;
  const list = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  if (list(content.deny).some((g) => globToRegExp(g).test(host))) return false;
  return list(content.allow).some((g) => globToRegExp(g).test(host));
}

/** Refuses (403 M_FORBIDDEN) a server that the room's current ACL denies. */
export async function checkServerAcl(db: Queryable, roomId: string, origin: string): Promise<void> {
  const acl = await getCurrentStateEvent(db, roomId, 'm.room.server_acl', '');
  const content = acl?.json.content;
  if (content && typeof content === 'object' && !serverAllowedByAcl(content, origin)) {
    throw new MatrixError(403, 'M_FORBIDDEN', `server ${origin} is denied by the server ACL of ${roomId}`);
  }
}

/** A room held here: 404 otherwise. */
export async function heldRoom(db: Queryable, roomId: string): Promise<StoredRoom> {
  const room = await getRoom(db, roomId);
  if (!room || !(await isRoomHeld(db, roomId))) throw new MatrixError(404, 'M_NOT_FOUND', `room ${roomId} is not known to this server`);
  return room;
}

/** ACL, then the origin must have a joined member in the room (history is for participants). */
export async function checkParticipant(db: Queryable, roomId: string, origin: string): Promise<StoredRoom> {
  const room = await heldRoom(db, roomId);
  await checkServerAcl(db, roomId, origin);
  const servers = await getJoinedServers(db, roomId);
  if (!servers.includes(origin)) throw new MatrixError(403, 'M_FORBIDDEN', `server ${origin} is not in room ${roomId}`);
  return room;
}
