/**
 * `text` with the credentials of every URL in it masked (`amqp://sage:secret@host` →
 * `amqp://***@host`), for health bodies, which are served to whoever can reach the endpoint.
 * Broker and driver errors sometimes quote the URL they were given.
 */
export function redactCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi, '$1***@');
}
