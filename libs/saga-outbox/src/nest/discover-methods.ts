import type { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { InvalidOptionsError } from '../core/errors';
import { refuseNestPattern, type SageHandlerDecorator } from './handler-misuse';

/** A provider (or controller) method carrying a Sage decorator's metadata. */
export interface DecoratedMethod<Meta> {
  /** `ClassName.methodName`, for messages. */
  readonly name: string;
  readonly meta: Meta;
  /** The method bound to its instance. */
  readonly method: (...args: never[]) => unknown;
}

/**
 * Every method of the app's providers (and controllers, with `controllers`) carrying `metadataKey`,
 * found through the DiscoveryService at module init. A method on a request-scoped (or
 * transient-dependent) provider fails startup naming it: message handlers need a singleton; so
 * does one that also carries Nest's `@EventPattern` / `@MessagePattern` (it would run twice).
 */
export function discoverDecoratedMethods<Meta>(
  discovery: DiscoveryService,
  scanner: MetadataScanner,
  reflector: Reflector,
  metadataKey: string,
  decorator: SageHandlerDecorator,
  options: { controllers?: boolean } = {},
): DecoratedMethod<Meta>[] {
  const found: DecoratedMethod<Meta>[] = [];
  const wrappers = [
    ...discovery.getProviders(),
    ...(options.controllers ? discovery.getControllers() : []),
  ];
  for (const wrapper of wrappers) {
    const instance: unknown = wrapper.instance;
    if (!instance || typeof instance !== 'object') continue;
    const prototype = Object.getPrototypeOf(instance) as object | null;
    if (!prototype) continue;
    for (const methodName of scanner.getAllMethodNames(prototype)) {
      const method = (instance as Record<string, unknown>)[methodName];
      if (typeof method !== 'function') continue;
      const meta = reflector.get<Meta | undefined>(metadataKey, method);
      if (meta === undefined) continue;
      const name = `${instance.constructor.name}.${methodName}`;
      refuseNestPattern(reflector, decorator, name, method);
      if (!wrapper.isDependencyTreeStatic()) {
        throw new InvalidOptionsError(
          decorator,
          `${name} is on a request-scoped (or transient-dependent) provider; message handlers need a singleton. Move it to a default-scoped provider.`,
        );
      }
      found.push({
        name,
        meta,
        method: (method as (...args: never[]) => unknown).bind(instance),
      });
    }
  }
  return found;
}
