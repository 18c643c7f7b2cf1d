// Reads the mails authd wrote to its outbox (mail.file_dir, one .eml per mail) and pulls out the
// token of the emailed link.

import fsp from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Quoted-printable (how authd encodes the text part): soft line breaks and =XX bytes. */
function decodeQuotedPrintable(text: string): string {
  const bytes = text
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

/**
 * Waits for a mail to `to` whose subject contains `subject` (the mailer sends in the background)
 * and answers the `token` of the first link in it.
 */
export async function emailedToken(outbox: string, to: string, subject: string, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const files = await fsp.readdir(outbox).catch(() => []);
    for (const file of files.filter((f) => f.endsWith('.eml'))) {
      const raw = await fsp.readFile(path.join(outbox, file), 'utf8');
      const headers = raw.slice(0, raw.indexOf('\n\n'));
      if (!headers.includes(`To: ${to}`) || !new RegExp(`^Subject: .*${subject}`, 'm').test(headers)) continue;
      const token = /[?&]token=([A-Za-z0-9_-]+)/.exec(decodeQuotedPrintable(raw))?.[1];
      if (token) return token;
    }
    if (Date.now() > deadline) throw new Error(`no mail "${subject}" to ${to} in ${outbox} within ${timeoutMs} ms`);
    await sleep(50);
  }
}
