// The xenstored wire protocol over the control store: codec, per-connection
// request handling, and a stream transport. Transports (the daemon's Unix
// sockets, a guest's channel) live with their owners and call serveStream.

export {
  atoi,
  countStrings,
  encodeFrame,
  FrameDecoder,
  payloadStrings,
  singleArg,
  WireProtocolError,
} from './codec.ts';
export {
  DOMID_SELF,
  HEADER_SIZE,
  PAYLOAD_MAX,
  type WireErrno,
  type WireMessage,
  XsType,
  type XsTypeName,
} from './protocol.ts';
export { WireServer, type WireServerOptions } from './server.ts';
export type { WireIdentity, WireSession, WireSink } from './session.ts';
export { type StreamOptions, serveStream, type WireConnection } from './stream.ts';
