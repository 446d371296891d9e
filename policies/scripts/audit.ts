// A log script: the access-log line says which partner code called (a field of its own).
import type { LogScript } from 'portcullis/script'

export default ((ctx) => {
  const code = ctx.app?.meta.partner_code
  if (code) ctx.addField('partner_code', code)
}) satisfies LogScript
