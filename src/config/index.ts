// The config package: xl.cfg text -> validated DomainConfig. Other layers import from here.

export { type CpuListItem, expandCpuList, parseCpuList } from './cpulist.ts';
export { parseDiskSpec, vdevNumber } from './disk.ts';
export { renderKeyDocs } from './docs.ts';
export { DiskSpecSchema, DomainConfigSchema, StaticShmSpecSchema, VifSpecSchema } from './domain-schema.ts';
export { checkKernel, type KernelKind, kernelKind } from './files.ts';
export { type ConfigTextOptions, type LoadedConfig, type LoadOptions, loadConfigFile, loadConfigText } from './load.ts';
export { COMMAND_LINE, type Loc } from './location.ts';
export {
  mergeConfigs,
  type PlainValue,
  parseConfig,
  parseOverrides,
  plainConfig,
  plainValue,
  printConfig,
  printValue,
  type RawConfig,
  type RawSetting,
  type RawValue,
} from './parser.ts';
export { CONFIG_KEYS, type KeySpec, type KeyStatus, type KeyType, keySpec } from './schema.ts';
export { parseStaticShmSpec } from './shm.ts';
export { configToJson, DEFAULT_MEMORY_MIB, type ValidateOptions, validateConfig } from './validate.ts';
export { NIC_MODELS, parseMac, parseVifRate, parseVifSpec, type VifRate } from './vif.ts';
