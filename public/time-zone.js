/*
 * N1: the browser's time zone, so that the times in the user's notices are
 * written in it. Kept in the sls_tz cookie (a preference, not a secret) and
 * remembered at a complete login, unless the user chose a time zone in the
 * account ("Language and time zone for notices").
 */
(() => {
  try {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (!zone || !/^[A-Za-z0-9_+\-/]{1,64}$/.test(zone)) return;
    const value = encodeURIComponent(zone);
    if (document.cookie.split('; ').includes(`sls_tz=${value}`)) return;
    const secure = location.protocol === 'https:' ? '; secure' : '';
    // biome-ignore lint/suspicious/noDocumentCookie: one plain preference cookie; the Cookie Store API is missing from some browsers we serve
    document.cookie = `sls_tz=${value}; path=/; max-age=31536000; samesite=lax${secure}`;
  } catch {
    // no Intl time zone: the server's is used
  }
})();
