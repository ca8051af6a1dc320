// Shared declarations of the jitterscope addon: error helpers and type tags.
#pragma once
#include <napi.h>
#include <string>

namespace js {

// Per-environment state: the BpfError constructor registered from TypeScript.
struct AddonData {
  Napi::FunctionReference errorClass;
  Napi::FunctionReference objectCtor;
  Napi::FunctionReference ringCtor;
};

// Throws `new BpfError(message, {step, errno, code, detail})` (or a plain Error
// before TypeScript registered the class). `err` is a positive or negative errno.
// Never throws over a pending exception.
void ThrowBpf(Napi::Env env, const std::string &step, int err, const std::string &detail = "");
void ThrowType(Napi::Env env, const std::string &message);

// libbpf's messages, captured instead of printed; the tail is attached to errors.
void InstallLibbpfLogger();
std::string TakeLibbpfLog();
std::string LibbpfLogTail(size_t maxLines);

// The BPF objects compiled into the addon (embedded.cc), by name.
struct EmbeddedObject {
  const char *name;
  const void *(*bytes)(size_t *);
};
const EmbeddedObject *FindEmbedded(const std::string &name);

Napi::Object InitEmbedded(Napi::Env env, Napi::Object exports);
Napi::Object InitObject(Napi::Env env, Napi::Object exports, AddonData *data);
Napi::Object InitRing(Napi::Env env, Napi::Object exports, AddonData *data);

}  // namespace js
