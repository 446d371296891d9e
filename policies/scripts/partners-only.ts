// An access script: only apps that carry a partner code get through (app.meta, set in apps.policy).
import type { AccessScript } from 'portcullis/script'

export default ((ctx) => {
  if (!ctx.app?.meta.partner_code) return ctx.refuse('forbidden', 'this API is for partners with a partner code')
}) satisfies AccessScript
