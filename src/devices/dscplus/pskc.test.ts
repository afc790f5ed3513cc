import { createCipheriv, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { SlsError, type ErrorParams } from '../../errors.js';
import { parsePskc, REASONS, type PskcDecryption, type PskcKey } from './pskc.js';

const FIXTURES = new URL('../../../test/fixtures/pskc/', import.meta.url);
const SUITE = 'OCRA-1:HOTP-SHA256-8:QN06-PSHA1';
const OCRA_URI = `urn:ietf:params:xml:ns:keyprov:pskc#${SUITE}`;
const HOTP_URI = 'urn:ietf:params:xml:ns:keyprov:pskc:hotp';
const AES128 = 'http://www.w3.org/2001/04/xmlenc#aes128-cbc';
const HMAC_SHA1 = 'http://www.w3.org/2000/09/xmldsig#hmac-sha1';
const PBKDF2 = 'http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2';
const NS =
  'xmlns="urn:ietf:params:xml:ns:keyprov:pskc" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ' +
  'xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:xenc11="http://www.w3.org/2009/xmlenc11#" ' +
  'xmlns:pkcs5="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#"';

function fixture(name: string): string {
  return readFileSync(new URL(name, FIXTURES), 'utf8');
}

/** Runs `parse` and returns the INVALID_PSKC error it must throw. */
function pskcError(xml: string, decryption?: PskcDecryption): SlsError {
  try {
    parsePskc(xml, decryption);
  } catch (e) {
    expect(e).toBeInstanceOf(SlsError);
    const error = e as SlsError;
    expect(error.code).toBe('INVALID_PSKC');
    expect(error.status).toBe(400);
    return error;
  }
  throw new Error('expected parsePskc to throw');
}

function reasonOf(xml: string, decryption?: PskcDecryption): ErrorParams[string] | undefined {
  return pskcError(xml, decryption).params.reason;
}

/** Replaces the n-th (1-based) occurrence of `search`. */
function replaceNth(text: string, search: string, replacement: string, n: number): string {
  let index = -1;
  for (let i = 0; i < n; i++) {
    index = text.indexOf(search, index + 1);
    if (index < 0) throw new Error(`occurrence ${n} of ${search} not found`);
  }
  return text.slice(0, index) + replacement + text.slice(index + search.length);
}

function secretsBySerial(keys: PskcKey[]): Record<string, string> {
  return Object.fromEntries(keys.map((k) => [k.serial, k.secret.toString('hex')]));
}

// --- building test documents with node:crypto --------------------------------

type AesName = 'aes-128-cbc' | 'aes-192-cbc' | 'aes-256-cbc';

function cipherUri(name: AesName): string {
  return `http://www.w3.org/2001/04/xmlenc#aes${name.slice(4, 7)}-cbc`;
}

function encrypt(name: AesName, key: Buffer, data: Buffer): Buffer {
  const iv = randomBytes(16);
  const cipher = createCipheriv(name, key, iv);
  return Buffer.concat([iv, cipher.update(data), cipher.final()]);
}

function encryptedValue(name: AesName, cipherValue: Buffer): string {
  return (
    `<xenc:EncryptionMethod Algorithm="${cipherUri(name)}"/>` +
    `<xenc:CipherData><xenc:CipherValue>${cipherValue.toString('base64')}</xenc:CipherValue></xenc:CipherData>`
  );
}

interface PackageSpec {
  serial?: string;
  algorithm?: string;
  parameters?: string;
  /** Inner XML of <Data>. */
  data: string;
}

function keyPackage(spec: PackageSpec): string {
  const device = spec.serial === undefined ? '' : `<DeviceInfo><SerialNo>${spec.serial}</SerialNo></DeviceInfo>`;
  return (
    `<KeyPackage>${device}<Key Id="k-${spec.serial ?? 'x'}" Algorithm="${spec.algorithm ?? OCRA_URI}">` +
    `<AlgorithmParameters>${spec.parameters ?? '<ResponseFormat Length="8" Encoding="DECIMAL"/>'}</AlgorithmParameters>` +
    `<Data>${spec.data}</Data></Key></KeyPackage>`
  );
}

function container(inner: string, version = '1.0'): string {
  return `<?xml version="1.0" encoding="UTF-8"?><KeyContainer Version="${version}" ${NS}>${inner}</KeyContainer>`;
}

function plainData(secret: Buffer): string {
  return `<Secret><PlainValue>${secret.toString('base64')}</PlainValue></Secret>`;
}

interface EncryptedSpec {
  cipher: AesName;
  key: Buffer;
  /** Inner XML of <EncryptionKey>. */
  encryptionKey: string;
  mac?: { uri: string; hash: string; key: Buffer };
  secrets: Array<[string, Buffer]>;
}

function encryptedDocument(spec: EncryptedSpec): string {
  const macMethod =
    spec.mac === undefined
      ? ''
      : `<MACMethod Algorithm="${spec.mac.uri}"><MACKey>${encryptedValue(spec.cipher, encrypt(spec.cipher, spec.key, spec.mac.key))}</MACKey></MACMethod>`;
  const packages = spec.secrets.map(([serial, secret]) => {
    const cipherValue = encrypt(spec.cipher, spec.key, secret);
    const valueMac = spec.mac === undefined ? '' : `<ValueMAC>${createHmac(spec.mac.hash, spec.mac.key).update(cipherValue).digest('base64')}</ValueMAC>`;
    return keyPackage({ serial, data: `<Secret><EncryptedValue>${encryptedValue(spec.cipher, cipherValue)}</EncryptedValue>${valueMac}</Secret>` });
  });
  return container(`<EncryptionKey>${spec.encryptionKey}</EncryptionKey>${macMethod}${packages.join('')}`);
}

function pbkdf2Key(salt: Buffer, iterations: number, keyLength: number, prf: string): string {
  return (
    `<xenc11:DerivedKey><xenc11:KeyDerivationMethod Algorithm="${PBKDF2}"><pkcs5:PBKDF2-params>` +
    `<Salt><Specified>${salt.toString('base64')}</Specified></Salt><IterationCount>${iterations}</IterationCount>` +
    `<KeyLength>${keyLength}</KeyLength>${prf}</pkcs5:PBKDF2-params></xenc11:KeyDerivationMethod></xenc11:DerivedKey>`
  );
}

// --- RFC 6030 examples ----------------------------------------------------------

/** RFC 6030 Figure 3 (Figure 2 plus DeviceInfo, ResponseFormat and Counter). */
const RFC6030_FIGURE3 = `<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0"
    Id="exampleID1"
    xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
    <KeyPackage>
        <DeviceInfo>
            <Manufacturer>Manufacturer</Manufacturer>
            <SerialNo>987654321</SerialNo>
            <UserId>DC=example-bank,DC=net</UserId>
        </DeviceInfo>
        <CryptoModuleInfo>
            <Id>CM_ID_001</Id>
        </CryptoModuleInfo>
        <Key Id="12345678"
            Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
            <Issuer>Issuer</Issuer>
            <AlgorithmParameters>
                <ResponseFormat Length="8" Encoding="DECIMAL"/>
            </AlgorithmParameters>
            <Data>
                <Secret>
                    <PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=
                    </PlainValue>
                </Secret>
                <Counter>
                    <PlainValue>0</PlainValue>
                </Counter>
            </Data>
            <UserId>UID=jsmith,DC=example-bank,DC=net</UserId>
        </Key>
    </KeyPackage>
</KeyContainer>`;

/** RFC 6030 Figure 2: a key without DeviceInfo (so without a serial number). */
const RFC6030_FIGURE2 = `<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0"
    Id="exampleID1"
    xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
    <KeyPackage>
        <Key Id="12345678"
            Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
            <Issuer>Issuer-A</Issuer>
            <Data>
                <Secret>
                    <PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=
                    </PlainValue>
                </Secret>
            </Data>
        </Key>
    </KeyPackage>
</KeyContainer>`;

/** RFC 6030 Figure 6 (§6.1.1): AES-128-CBC under a pre-shared key, HMAC-SHA1 ValueMAC. */
const RFC6030_FIGURE6 = `<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0"
    xmlns="urn:ietf:params:xml:ns:keyprov:pskc"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#"
    xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">
    <EncryptionKey>
        <ds:KeyName>Pre-shared-key</ds:KeyName>
    </EncryptionKey>
    <MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1">
        <MACKey>
            <xenc:EncryptionMethod
            Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
            <xenc:CipherData>
                <xenc:CipherValue>
    ESIzRFVmd4iZABEiM0RVZgKn6WjLaTC1sbeBMSvIhRejN9vJa2BOlSaMrR7I5wSX
                </xenc:CipherValue>
            </xenc:CipherData>
        </MACKey>
    </MACMethod>
    <KeyPackage>
        <DeviceInfo>
            <Manufacturer>Manufacturer</Manufacturer>
            <SerialNo>987654321</SerialNo>
        </DeviceInfo>
        <CryptoModuleInfo>
            <Id>CM_ID_001</Id>
        </CryptoModuleInfo>
        <Key Id="12345678"
            Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
            <Issuer>Issuer</Issuer>
            <AlgorithmParameters>
                <ResponseFormat Length="8" Encoding="DECIMAL"/>
            </AlgorithmParameters>
            <Data>
                <Secret>
                    <EncryptedValue>
                        <xenc:EncryptionMethod
            Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
                        <xenc:CipherData>
                            <xenc:CipherValue>
    AAECAwQFBgcICQoLDA0OD+cIHItlB3Wra1DUpxVvOx2lef1VmNPCMl8jwZqIUqGv
                            </xenc:CipherValue>
                        </xenc:CipherData>
                    </EncryptedValue>
                    <ValueMAC>Su+NvtQfmvfJzF6bmQiJqoLRExc=
                    </ValueMAC>
                </Secret>
                <Counter>
                    <PlainValue>0</PlainValue>
                </Counter>
            </Data>
        </Key>
    </KeyPackage>
</KeyContainer>`;

/** RFC 6030 Figure 7 (§6.2): PBKDF2 password "qwerty", all elements prefixed. */
const RFC6030_FIGURE7 = `<?xml version="1.0" encoding="UTF-8"?>
<pskc:KeyContainer
  xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"
  xmlns:xenc11="http://www.w3.org/2009/xmlenc11#"
  xmlns:pkcs5=
  "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#"
  xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Version="1.0">
    <pskc:EncryptionKey>
        <xenc11:DerivedKey>
            <xenc11:KeyDerivationMethod
              Algorithm=
 "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2">
                <pkcs5:PBKDF2-params>
                    <Salt>
                        <Specified>Ej7/PEpyEpw=</Specified>
                    </Salt>
                    <IterationCount>1000</IterationCount>
                    <KeyLength>16</KeyLength>
                    <PRF/>
                </pkcs5:PBKDF2-params>
            </xenc11:KeyDerivationMethod>
            <xenc:ReferenceList>
                <xenc:DataReference URI="#ED"/>
            </xenc:ReferenceList>
            <xenc11:MasterKeyName>My Password 1</xenc11:MasterKeyName>
        </xenc11:DerivedKey>
    </pskc:EncryptionKey>
    <pskc:MACMethod
        Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1">
        <pskc:MACKey>
            <xenc:EncryptionMethod
            Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
            <xenc:CipherData>
                <xenc:CipherValue>
2GTTnLwM3I4e5IO5FkufoOEiOhNj91fhKRQBtBJYluUDsPOLTfUvoU2dStyOwYZx
                </xenc:CipherValue>
            </xenc:CipherData>
        </pskc:MACKey>
    </pskc:MACMethod>
    <pskc:KeyPackage>
        <pskc:DeviceInfo>
            <pskc:Manufacturer>TokenVendorAcme</pskc:Manufacturer>
            <pskc:SerialNo>987654321</pskc:SerialNo>
        </pskc:DeviceInfo>
        <pskc:CryptoModuleInfo>
            <pskc:Id>CM_ID_001</pskc:Id>
        </pskc:CryptoModuleInfo>
        <pskc:Key Algorithm=
        "urn:ietf:params:xml:ns:keyprov:pskc:hotp" Id="123456">
            <pskc:Issuer>Example-Issuer</pskc:Issuer>
            <pskc:AlgorithmParameters>
                <pskc:ResponseFormat Length="8" Encoding="DECIMAL"/>
            </pskc:AlgorithmParameters>
            <pskc:Data>
                <pskc:Secret>
                <pskc:EncryptedValue Id="ED">
                    <xenc:EncryptionMethod
                        Algorithm=
"http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
                        <xenc:CipherData>
                            <xenc:CipherValue>
      oTvo+S22nsmS2Z/RtcoF8Hfh+jzMe0RkiafpoDpnoZTjPYZu6V+A4aEn032yCr4f
                        </xenc:CipherValue>
                    </xenc:CipherData>
                </pskc:EncryptedValue>
                <pskc:ValueMAC>LP6xMvjtypbfT9PdkJhBZ+D6O4w=
                </pskc:ValueMAC>
                </pskc:Secret>
            </pskc:Data>
        </pskc:Key>
    </pskc:KeyPackage>
</pskc:KeyContainer>`;

const RFC_PSK = Buffer.from('12345678901234567890123456789012', 'hex');
const RFC_SECRET_HEX = Buffer.from('12345678901234567890', 'ascii').toString('hex');

// --- fixtures -------------------------------------------------------------------

const FIXTURE_PSK = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
const FIXTURE_PASSWORD = 'correct horse battery';
const PLAIN_SECRETS = {
  DSC0000001: '8e03405f1defe93898f7a21c653c66d88470235f771cd570e952160b336a3a0d',
  DSC0000002: '91df2d4ad997a9581d49b84e486c32ed7bde3681a92a016c73d82ef9d5a3d703',
  DSC0000003: 'b02a5fe0022bfca78c23ef3bc11ef4b34834954fd98ef01e7394d22a519bf8de',
};
const AES_SECRETS = {
  DSC0000101: '5526dcc3729293a37b28fe7e795734d4abfed3ca9883bce26e793b09952b632e',
  DSC0000102: 'f85b1e7b4d1e5a3064c8476d9a8e819becb0d46c87ad785606309c619b04832a',
};
const PBKDF2_SECRETS = {
  DSC0000201: 'bde7d6df13f4e4366af4de43511f63379b9367b9a00116b7d60668e71055ce7c',
  DSC0000202: 'd3f3e9f4b73bac68946252402225483166bf2e0c8ec016bb35b76ed9000eea2f',
};

describe('parsePskc: plaintext', () => {
  it('C8: imports a plaintext PSKC batch with serials (batch-plain.xml)', () => {
    const keys = parsePskc(fixture('batch-plain.xml'));
    expect(keys.map((k) => k.serial)).toEqual(['DSC0000001', 'DSC0000002', 'DSC0000003']);
    expect(secretsBySerial(keys)).toEqual(PLAIN_SECRETS);
    for (const key of keys) {
      expect(key.suite).toBe(SUITE);
      expect(key.responseLength).toBe(8);
      expect(key.manufacturer).toBe('Example Card Works');
      expect(key.keyId).toBe(`${key.serial}-1`);
      expect(key.secret).toHaveLength(32);
      expect(key.counter).toBeUndefined();
    }
    // the first two carry the suite in the Algorithm URI, the third in <Suite>
    expect(keys[0]!.algorithm).toBe(OCRA_URI);
    expect(keys[2]!.algorithm).toBe('urn:ietf:params:xml:ns:keyprov:pskc#OCRA-1');
  });

  it('C8: imports the RFC 6030 Figure 3 plaintext HOTP key (serial 987654321)', () => {
    const keys = parsePskc(RFC6030_FIGURE3);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toEqual({
      serial: '987654321',
      manufacturer: 'Manufacturer',
      keyId: '12345678',
      algorithm: HOTP_URI,
      family: 'hotp',
      responseLength: 8,
      secret: Buffer.from('MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=', 'base64'),
      counter: 0,
    });
    expect(keys[0]!.secret.toString('ascii')).toBe('12345678901234567890');
    expect(keys[0]!.suite).toBeUndefined();
  });

  it('C8: handles one and many KeyPackages, with or without namespace prefixes, alike', () => {
    const secret = randomBytes(20);
    const unprefixed = container(keyPackage({ serial: 'A1', data: plainData(secret) }));
    const prefixed = unprefixed.replace(/<(\/?)(?!\?|xenc|ds|pkcs5)(\w)/g, '<$1pskc:$2').replace('xmlns="urn', 'xmlns:pskc="urn');
    expect(prefixed).toContain('<pskc:KeyPackage>');
    for (const xml of [unprefixed, prefixed]) {
      const keys = parsePskc(xml);
      expect(keys.map((k) => [k.serial, k.secret.toString('hex')])).toEqual([['A1', secret.toString('hex')]]);
    }
  });

  it('C8: takes the OCRA suite from <Suite> and accepts a matching Algorithm URI suite', () => {
    const secret = randomBytes(32);
    const data = plainData(secret);
    const suiteParam = `<Suite>${SUITE}</Suite><ResponseFormat Length="8" Encoding="DECIMAL"/>`;
    const keys = parsePskc(
      container(
        keyPackage({ serial: 'S1', algorithm: 'urn:ietf:params:xml:ns:keyprov:pskc#OCRA-1', parameters: suiteParam, data }) +
          keyPackage({ serial: 'S2', algorithm: OCRA_URI, parameters: suiteParam, data }),
      ),
    );
    expect(keys.map((k) => k.suite)).toEqual([SUITE, SUITE]);
  });

  it('C8: reads Data/Counter/PlainValue', () => {
    const keys = parsePskc(
      container(keyPackage({ serial: 'C1', algorithm: HOTP_URI, data: `${plainData(randomBytes(20))}<Counter><PlainValue>42</PlainValue></Counter>` })),
    );
    expect(keys[0]!.counter).toBe(42);
  });
});

describe('parsePskc: encrypted', () => {
  it('C8: decrypts the RFC 6030 §6.1.1 (Figure 6) AES-128-CBC example and verifies its MAC', () => {
    const keys = parsePskc(RFC6030_FIGURE6, { preSharedKey: RFC_PSK });
    expect(keys).toHaveLength(1);
    expect(keys[0]!.serial).toBe('987654321');
    expect(keys[0]!.secret.toString('ascii')).toBe('12345678901234567890');
    expect(keys[0]!.secret.toString('hex')).toBe(RFC_SECRET_HEX);
    expect(keys[0]!.counter).toBe(0);
    expect(keys[0]!.responseLength).toBe(8);
  });

  it('C8: decrypts the RFC 6030 §6.2 (Figure 7) PBKDF2 example with password "qwerty"', () => {
    const keys = parsePskc(RFC6030_FIGURE7, { password: 'qwerty' });
    expect(keys).toHaveLength(1);
    expect(keys[0]!.serial).toBe('987654321');
    expect(keys[0]!.manufacturer).toBe('TokenVendorAcme');
    expect(keys[0]!.keyId).toBe('123456');
    expect(keys[0]!.secret.toString('hex')).toBe(RFC_SECRET_HEX);
  });

  it('C8: decrypts batch-aes.xml (AES-128-CBC, pre-shared key, HMAC-SHA1 ValueMAC)', () => {
    const keys = parsePskc(fixture('batch-aes.xml'), { preSharedKey: FIXTURE_PSK });
    expect(secretsBySerial(keys)).toEqual(AES_SECRETS);
    expect(keys.every((k) => k.suite === SUITE && k.responseLength === 8)).toBe(true);
  });

  it('C8: decrypts batch-pbkdf2.xml (PBKDF2-HMAC-SHA1 password-derived key)', () => {
    const keys = parsePskc(fixture('batch-pbkdf2.xml'), { password: FIXTURE_PASSWORD });
    expect(secretsBySerial(keys)).toEqual(PBKDF2_SECRETS);
  });

  it('C8: decrypts a generated AES-256-CBC document with PBKDF2-HMAC-SHA256 and HMAC-SHA256 MAC', () => {
    const salt = randomBytes(16);
    const key = pbkdf2Sync('s3cret pass', salt, 2000, 32, 'sha256');
    const secrets: Array<[string, Buffer]> = [
      ['G1', randomBytes(32)],
      ['G2', randomBytes(20)],
    ];
    const xml = encryptedDocument({
      cipher: 'aes-256-cbc',
      key,
      encryptionKey: pbkdf2Key(salt, 2000, 32, '<PRF Algorithm="http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"/>'),
      mac: { uri: 'http://www.w3.org/2001/04/xmldsig-more#hmac-sha256', hash: 'sha256', key: randomBytes(32) },
      secrets,
    });
    const keys = parsePskc(xml, { password: 's3cret pass' });
    expect(secretsBySerial(keys)).toEqual(Object.fromEntries(secrets.map(([s, b]) => [s, b.toString('hex')])));
  });

  it('C8: decrypts a generated AES-192-CBC document under a pre-shared key', () => {
    const key = randomBytes(24);
    const secret = randomBytes(32);
    const xml = encryptedDocument({
      cipher: 'aes-192-cbc',
      key,
      encryptionKey: '<ds:KeyName>transport</ds:KeyName>',
      mac: { uri: HMAC_SHA1, hash: 'sha1', key: randomBytes(20) },
      secrets: [['K1', secret]],
    });
    expect(parsePskc(xml, { preSharedKey: key })[0]!.secret.toString('hex')).toBe(secret.toString('hex'));
  });

  it('C8: accepts an encrypted document without MACMethod (no ValueMAC to check)', () => {
    const key = randomBytes(16);
    const secret = randomBytes(32);
    const xml = encryptedDocument({ cipher: 'aes-128-cbc', key, encryptionKey: '<ds:KeyName>k</ds:KeyName>', secrets: [['N1', secret]] });
    expect(parsePskc(xml, { preSharedKey: key })[0]!.secret.equals(secret)).toBe(true);
  });

  it('C8: needs no decryption key for a plaintext document that has a MACMethod', () => {
    const macMethod = `<MACMethod Algorithm="${HMAC_SHA1}"><MACKey>${encryptedValue('aes-128-cbc', encrypt('aes-128-cbc', randomBytes(16), randomBytes(20)))}</MACKey></MACMethod>`;
    const xml = container(macMethod + keyPackage({ serial: 'P1', data: plainData(Buffer.from('abcdefghijklmnop')) }));
    expect(parsePskc(xml)[0]!.secret.toString()).toBe('abcdefghijklmnop');
  });
});

describe('parsePskc: errors', () => {
  it('C8: rejects input that is not XML', () => {
    for (const xml of ['', 'hello', '<a><b></a>', '{"KeyContainer":1}']) {
      expect(reasonOf(xml)).toBe(REASONS.notXml);
    }
  });

  it('C8: rejects XML that is not a single KeyContainer', () => {
    expect(reasonOf('<foo/>')).toBe(REASONS.notContainer);
    expect(reasonOf('<KeyContainer Version="1.0"/><KeyContainer Version="1.0"/>')).toBe(REASONS.notContainer);
    expect(reasonOf('<pskc:KeyPackage xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"/>')).toBe(REASONS.notContainer);
  });

  it('C8: rejects a DOCTYPE (entity expansion)', () => {
    const xml = `<!DOCTYPE KeyContainer [<!ENTITY a "aaaa">]><KeyContainer Version="1.0"><KeyPackage/></KeyContainer>`;
    expect(reasonOf(xml)).toBe(REASONS.dtd);
  });

  it('C8: rejects a Version other than 1.0', () => {
    const pkg = keyPackage({ serial: 'V1', data: plainData(randomBytes(20)) });
    expect(reasonOf(container(pkg, '2.0'))).toBe(REASONS.version);
    expect(reasonOf(`<KeyContainer ${NS}>${pkg}</KeyContainer>`)).toBe(REASONS.version);
  });

  it('C8: rejects a KeyContainer without KeyPackage', () => {
    expect(reasonOf(container(''))).toBe(REASONS.noPackage);
    expect(reasonOf(container('<EncryptionKey><ds:KeyName>x</ds:KeyName></EncryptionKey>'))).toBe(REASONS.noPackage);
  });

  it('C8: rejects a KeyPackage without serial (RFC 6030 Figure 2 has none)', () => {
    const error = pskcError(RFC6030_FIGURE2);
    expect(error.params).toMatchObject({ reason: REASONS.missingSerial, index: 1 });
    expect(reasonOf(container(keyPackage({ data: plainData(randomBytes(20)) })))).toBe(REASONS.missingSerial);
    const emptySerial = container(keyPackage({ serial: ' ', data: plainData(randomBytes(20)) }));
    expect(reasonOf(emptySerial)).toBe(REASONS.missingSerial);
  });

  it('C8: rejects a key without secret', () => {
    expect(reasonOf(container(keyPackage({ serial: 'M1', data: '' })))).toBe(REASONS.missingSecret);
    expect(reasonOf(container(keyPackage({ serial: 'M2', data: '<Secret></Secret>' })))).toBe(REASONS.missingSecret);
    expect(reasonOf(container(keyPackage({ serial: 'M3', data: '<Secret><PlainValue></PlainValue></Secret>' })))).toBe(REASONS.missingSecret);
    expect(reasonOf(container('<KeyPackage><DeviceInfo><SerialNo>M4</SerialNo></DeviceInfo></KeyPackage>'))).toBe(REASONS.missingKey);
  });

  it('C8: rejects a secret that is not base64, or both plain and encrypted', () => {
    const xml = container(keyPackage({ serial: 'B1', data: '<Secret><PlainValue>not*base64!</PlainValue></Secret>' }));
    expect(reasonOf(xml)).toBe(REASONS.invalidValue);
    const both = RFC6030_FIGURE6.replace('<EncryptedValue>', '<PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue><EncryptedValue>');
    expect(reasonOf(both, { preSharedKey: RFC_PSK })).toBe(REASONS.invalidValue);
  });

  it('C8: rejects encrypted values when no key or password is supplied', () => {
    expect(reasonOf(fixture('batch-aes.xml'))).toBe(REASONS.keyRequired);
    expect(reasonOf(fixture('batch-aes.xml'), { password: FIXTURE_PASSWORD })).toBe(REASONS.keyRequired);
    expect(reasonOf(fixture('batch-pbkdf2.xml'))).toBe(REASONS.passwordRequired);
    expect(reasonOf(fixture('batch-pbkdf2.xml'), { preSharedKey: FIXTURE_PSK })).toBe(REASONS.passwordRequired);
    expect(reasonOf(RFC6030_FIGURE6, {})).toBe(REASONS.keyRequired);
  });

  it('C8: rejects a wrong pre-shared key or password (bad padding or MAC mismatch)', () => {
    const wrongKey = Buffer.from('ffeeddccbbaa99887766554433221100', 'hex');
    const wrong = [
      reasonOf(fixture('batch-aes.xml'), { preSharedKey: wrongKey }),
      reasonOf(RFC6030_FIGURE6, { preSharedKey: wrongKey }),
      reasonOf(fixture('batch-pbkdf2.xml'), { password: 'Correct horse battery' }),
      reasonOf(RFC6030_FIGURE7, { password: 'qwertz' }),
    ];
    for (const reason of wrong) expect([REASONS.wrongKey, REASONS.macMismatch]).toContain(reason);
    // a key of the wrong size for the cipher
    expect(reasonOf(fixture('batch-aes.xml'), { preSharedKey: randomBytes(32) })).toBe(REASONS.keyLength);
  });

  it('C8: rejects a wrong key without MAC by its padding', () => {
    const key = randomBytes(16);
    // A plaintext of exactly one block gets a full padding block, which a wrong key garbles
    // (a valid-looking pad byte 0x01 happens with probability ~1/256, so try several values).
    const secrets: Array<[string, Buffer]> = Array.from({ length: 8 }, (_, i) => [`W${i}`, randomBytes(16)]);
    const xml = encryptedDocument({ cipher: 'aes-128-cbc', key, encryptionKey: '<ds:KeyName>k</ds:KeyName>', secrets });
    expect(reasonOf(xml, { preSharedKey: randomBytes(16) })).toBe(REASONS.wrongKey);
  });

  it('C8: rejects a tampered ciphertext or ValueMAC (MAC mismatch)', () => {
    const original = fixture('batch-aes.xml');
    const cipherValue = /<pskc:EncryptedValue>[\s\S]*?<xenc:CipherValue>([^<]+)<\/xenc:CipherValue>/.exec(original)![1]!;
    const bytes = Buffer.from(cipherValue, 'base64');
    bytes[20] = bytes[20]! ^ 0x01;
    const tamperedCipher = original.replace(cipherValue, bytes.toString('base64'));
    expect(reasonOf(tamperedCipher, { preSharedKey: FIXTURE_PSK })).toBe(REASONS.macMismatch);

    const tamperedMac = RFC6030_FIGURE6.replace('Su+NvtQfmvfJzF6bmQiJqoLRExc=', 'Tu+NvtQfmvfJzF6bmQiJqoLRExc=');
    expect(reasonOf(tamperedMac, { preSharedKey: RFC_PSK })).toBe(REASONS.macMismatch);
    const shortMac = RFC6030_FIGURE6.replace('Su+NvtQfmvfJzF6bmQiJqoLRExc=', 'AAAA');
    expect(reasonOf(shortMac, { preSharedKey: RFC_PSK })).toBe(REASONS.macMismatch);
  });

  it('C8: rejects an encrypted secret without ValueMAC when MACMethod is present', () => {
    const xml = RFC6030_FIGURE6.replace(/<ValueMAC>[\s\S]*<\/ValueMAC>/, '');
    expect(reasonOf(xml, { preSharedKey: RFC_PSK })).toBe(REASONS.missingMac);
  });

  it('C8: rejects unsupported algorithms', () => {
    // encryption method of the MAC key (1st occurrence) and of the secret (2nd): key wrap, 3DES
    expect(reasonOf(replaceNth(RFC6030_FIGURE6, AES128, 'http://www.w3.org/2001/04/xmlenc#kw-aes128', 1), { preSharedKey: RFC_PSK })).toBe(
      REASONS.unsupportedAlgorithm,
    );
    expect(reasonOf(replaceNth(RFC6030_FIGURE6, AES128, 'http://www.w3.org/2001/04/xmlenc#tripledes-cbc', 2), { preSharedKey: RFC_PSK })).toBe(
      REASONS.unsupportedAlgorithm,
    );
    // MAC algorithm
    expect(reasonOf(RFC6030_FIGURE6.replace(HMAC_SHA1, 'http://www.w3.org/2001/04/xmldsig-more#hmac-md5'), { preSharedKey: RFC_PSK })).toBe(
      REASONS.unsupportedAlgorithm,
    );
    // key derivation and PRF
    expect(reasonOf(RFC6030_FIGURE7.replace(/pkcs-5v2-0#pbkdf2/, 'pkcs-5v2-0#scrypt'), { password: 'qwerty' })).toBe(REASONS.unsupportedAlgorithm);
    expect(reasonOf(RFC6030_FIGURE7.replace('<PRF/>', '<PRF Algorithm="urn:example:md5"/>'), { password: 'qwerty' })).toBe(REASONS.unsupportedAlgorithm);
    // key algorithm: an unknown URI is no device's algorithm
    const secret = plainData(randomBytes(20));
    for (const algorithm of ['urn:example:foo', 'urn:example:NOTOCRA-1:x', 'urn:ietf:params:xml:ns:keyprov:pskc:hotp-sha256']) {
      expect(reasonOf(container(keyPackage({ serial: 'U1', algorithm, data: secret })))).toBe(REASONS.unsupportedAlgorithm);
    }
    expect(reasonOf(container(`<KeyPackage><DeviceInfo><SerialNo>U2</SerialNo></DeviceInfo><Key Id="1"><Data>${secret}</Data></Key></KeyPackage>`))).toBe(
      REASONS.unsupportedAlgorithm,
    );
  });

  it('C8: rejects an invalid or conflicting OCRA suite', () => {
    const data = plainData(randomBytes(32));
    const bare = 'urn:ietf:params:xml:ns:keyprov:pskc#OCRA-1';
    expect(reasonOf(container(keyPackage({ serial: 'O1', algorithm: bare, data })))).toBe(REASONS.invalidSuite);
    expect(reasonOf(container(keyPackage({ serial: 'O2', algorithm: `${bare}:HOTP-MD5-8:QN06`, data })))).toBe(REASONS.invalidSuite);
    const conflicting = keyPackage({ serial: 'O3', algorithm: OCRA_URI, parameters: '<Suite>OCRA-1:HOTP-SHA1-6:QN08</Suite>', data });
    expect(reasonOf(container(conflicting))).toBe(REASONS.invalidSuite);
  });

  it('D1: reads several keys under one serial (one KeyPackage with several keys, or several KeyPackages); refuses a key id twice under a serial', () => {
    const [a, b, c] = [randomBytes(20), randomBytes(20), randomBytes(20)];
    const twoKeys =
      `<KeyPackage><DeviceInfo><SerialNo>M1</SerialNo></DeviceInfo>` +
      `<Key Id="hotp" Algorithm="${HOTP_URI}"><Data>${plainData(a)}</Data></Key>` +
      `<Key Id="totp" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp"><Data>${plainData(b)}</Data></Key></KeyPackage>`;
    const keys = parsePskc(container(twoKeys + keyPackage({ serial: 'M1', data: plainData(c) })));
    expect(keys.map((k) => [k.serial, k.keyId, k.family, k.secret.toString('hex')])).toEqual([
      ['M1', 'hotp', 'hotp', a.toString('hex')],
      ['M1', 'totp', 'totp', b.toString('hex')],
      ['M1', 'k-M1', 'ocra', c.toString('hex')],
    ]);
    const xml = container(
      keyPackage({ serial: 'D1', data: plainData(randomBytes(20)) }) +
        keyPackage({ serial: 'D2', data: plainData(randomBytes(20)) }) +
        keyPackage({ serial: 'D1', data: plainData(randomBytes(20)) }),
    );
    expect(pskcError(xml).params).toEqual({ reason: REASONS.duplicateKey, serial: 'D1', keyId: 'k-D1' });
  });

  it('C8: rejects a duplicated single-valued element', () => {
    const xml = container('<KeyPackage><DeviceInfo><SerialNo>X1</SerialNo><SerialNo>X2</SerialNo></DeviceInfo></KeyPackage>');
    expect(reasonOf(xml)).toBe(REASONS.duplicateElement);
  });

  it('C8: never puts secret bytes into an error', () => {
    const secret = randomBytes(32);
    const plain = container(keyPackage({ serial: 'E1', data: plainData(secret) }) + keyPackage({ serial: 'E1', data: plainData(secret) }));
    const badBase64 = container(keyPackage({ serial: 'E2', data: `<Secret><PlainValue>${secret.toString('base64')}!</PlainValue></Secret>` }));
    const tampered = RFC6030_FIGURE6.replace('Su+NvtQfmvfJzF6bmQiJqoLRExc=', 'Tu+NvtQfmvfJzF6bmQiJqoLRExc=');
    const errors = [
      pskcError(plain),
      pskcError(badBase64),
      pskcError(tampered, { preSharedKey: RFC_PSK }),
      pskcError(fixture('batch-aes.xml'), { preSharedKey: randomBytes(16) }),
    ];
    const forbidden = [
      secret.toString('hex'),
      secret.toString('base64'),
      '12345678901234567890',
      'MTIzNDU2Nzg5MDEyMzQ1Njc4OTA',
      RFC_PSK.toString('hex'),
      AES_SECRETS.DSC0000101,
    ];
    for (const error of errors) {
      const text = `${error.message} ${JSON.stringify(error.params)} ${error.stack ?? ''}`;
      for (const value of forbidden) expect(text).not.toContain(value);
    }
  });
});
