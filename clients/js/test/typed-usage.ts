// Compiled (never run) by test/protocol.test.mjs with `tsc --noEmit`: the declarations are
// valid TypeScript and describe frames as the protocol has them.
import { Connection, Session, type ClientFrame, type ServerFrame, type ErrorCode } from '../src/index.js';

declare const conn: Connection;
const session: Session = new Session({ baseUrl: 'http://127.0.0.1:1' });

export async function usage(): Promise<void> {
  await session.login('alice', 'correct horse');
  const joined = await conn.join('lobby');
  const count: number = joined.online_count;
  const ack = await conn.send('lobby', 'hi');
  const id: number = ack.id;
  const page = await conn.history('lobby', { after: id });
  const more: boolean = page.has_more;
  conn.on('message', (m) => {
    const sender: string = m.sender;
    void sender;
  });
  const left = await conn.request({ type: 'leave', room: 'lobby' });
  const leftRoom: string = left.room;
  // @ts-expect-error: no client frame `shout`.
  await conn.request({ type: 'shout', room: 'lobby' });
  // @ts-expect-error: `join` needs a room.
  await conn.request({ type: 'join' });
  void count;
  void more;
  void leftRoom;
}

export function frames(f: ServerFrame): string {
  switch (f.type) {
    case 'message':
      return f.body;
    case 'expiring':
      return String(f.expires_at);
    case 'error': {
      const code: ErrorCode = f.code;
      return code;
    }
    default:
      return f.type;
  }
}

export const send: ClientFrame = { type: 'send', room: 'lobby', body: 'hi', client_id: 'c-1' };
// @ts-expect-error: `bdy` is not a field of `send`.
export const typo: ClientFrame = { type: 'send', room: 'lobby', bdy: 'hi' };
// @ts-expect-error: no client frame `shout`.
export const unknown: ClientFrame = { type: 'shout', room: 'lobby' };
