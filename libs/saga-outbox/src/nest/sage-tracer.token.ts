/** Injection token of the SageTracer the module was given (`tracing` option); NO_TRACING by default. */
export const SAGE_TRACER = Symbol('SAGE_TRACER');
