/**
 * SMS encodings (M7): a text whose every character is in the GSM 03.38
 * alphabet (3GPP TS 23.038, default alphabet and its extension table) goes
 * as GSM-7, 160 septets in one segment (153 a segment when split); any
 * other character makes the whole text UCS-2, 70 characters in one segment
 * (67 when split). The extension characters take two septets each.
 */

const BASIC = '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const EXTENSION = '\f^{}\\[~]|€';

const basic = new Set(BASIC);
const extension = new Set(EXTENSION);

export interface SmsEncoding {
  encoding: 'GSM-7' | 'UCS-2';
  /** Septets (GSM-7) or UTF-16 code units (UCS-2). */
  units: number;
  segments: number;
  /** The characters that are not GSM-7 (what forces UCS-2). */
  nonGsm: string[];
}

/** How a text would be sent by SMS. */
export function smsEncoding(text: string): SmsEncoding {
  let septets = 0;
  const nonGsm: string[] = [];
  for (const ch of text) {
    if (basic.has(ch)) septets += 1;
    else if (extension.has(ch)) septets += 2;
    else nonGsm.push(ch);
  }
  if (nonGsm.length === 0) return { encoding: 'GSM-7', units: septets, segments: septets <= 160 ? 1 : Math.ceil(septets / 153), nonGsm };
  const units = text.length;
  return { encoding: 'UCS-2', units, segments: units <= 70 ? 1 : Math.ceil(units / 67), nonGsm };
}
