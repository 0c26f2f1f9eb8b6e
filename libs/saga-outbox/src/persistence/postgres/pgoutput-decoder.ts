/**
 * A decoder for the part of PostgreSQL's `pgoutput` logical replication protocol (version 1) the
 * WAL relay needs: Begin, Relation, Insert and Commit; everything else (Type, Origin, Update,
 * Delete, Truncate, Message) is skipped. Columns arrive in text format.
 * Reference: https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
 */

export interface PgoutputRelation {
  id: number;
  schema: string;
  table: string;
  columns: string[];
}

export type PgoutputMessage =
  | { tag: 'begin'; finalLsn: bigint }
  | { tag: 'commit'; commitLsn: bigint; endLsn: bigint }
  | { tag: 'relation'; relation: PgoutputRelation }
  | {
      tag: 'insert';
      relation: PgoutputRelation;
      /** Column name → text value (null for SQL NULL, undefined for unchanged TOAST). */
      row: Record<string, string | null | undefined>;
    }
  | { tag: 'other' };

/** Keeps the relations announced on one stream (they precede the first change of their table). */
export class PgoutputDecoder {
  private readonly relations = new Map<number, PgoutputRelation>();

  decode(buf: Buffer): PgoutputMessage {
    const r = new Reader(buf);
    const tag = String.fromCharCode(r.u8());
    switch (tag) {
      case 'B': {
        const finalLsn = r.u64();
        return { tag: 'begin', finalLsn };
      }
      case 'C': {
        r.u8(); // flags
        const commitLsn = r.u64();
        const endLsn = r.u64();
        return { tag: 'commit', commitLsn, endLsn };
      }
      case 'R': {
        const id = r.u32();
        const schema = r.cstring();
        const table = r.cstring();
        r.u8(); // replica identity
        const n = r.u16();
        const columns: string[] = [];
        for (let i = 0; i < n; i++) {
          r.u8(); // flags
          columns.push(r.cstring());
          r.u32(); // type oid
          r.u32(); // type modifier
        }
        const relation = { id, schema, table, columns };
        this.relations.set(id, relation);
        return { tag: 'relation', relation };
      }
      case 'I': {
        const id = r.u32();
        const relation = this.relations.get(id);
        if (!relation) throw new Error(`pgoutput: insert into unknown relation ${id}`);
        r.u8(); // 'N'
        const n = r.u16();
        const row: Record<string, string | null | undefined> = {};
        for (let i = 0; i < n; i++) {
          const kind = String.fromCharCode(r.u8());
          const name = relation.columns[i] ?? `#${i}`;
          if (kind === 'n') row[name] = null;
          else if (kind === 'u') row[name] = undefined;
          else if (kind === 't' || kind === 'b') row[name] = r.bytes(r.u32()).toString('utf8');
          else throw new Error(`pgoutput: unknown tuple column kind "${kind}"`);
        }
        return { tag: 'insert', relation, row };
      }
      default:
        return { tag: 'other' };
    }
  }
}

class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  u8(): number {
    return this.buf.readUInt8(this.at++);
  }
  u16(): number {
    const v = this.buf.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }
  u32(): number {
    const v = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }
  u64(): bigint {
    const v = this.buf.readBigUInt64BE(this.at);
    this.at += 8;
    return v;
  }
  bytes(n: number): Buffer {
    const v = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.at);
    const v = this.buf.toString('utf8', this.at, end);
    this.at = end + 1;
    return v;
  }
}
