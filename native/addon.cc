// jitterscope addon entry point: registers the generic BPF verbs (object.cc),
// the ring-buffer reader (ring.cc), the embedded objects and ABI table
// (embedded.cc) and the error plumbing (errors.cc).
#include "common.h"


namespace js {

static Napi::Value SetErrorClass(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) {
    ThrowType(env, "setErrorClass(ctor): ctor must be a function");
    return env.Undefined();
  }
  env.GetInstanceData<AddonData>()->errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  AddonData *data = new AddonData();
  env.SetInstanceData<AddonData>(data);
  InstallLibbpfLogger();
  InitEmbedded(env, exports);
  InitObject(env, exports, data);
  InitRing(env, exports, data);
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  return exports;
}

}  // namespace js

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return js::Init(env, exports); }
NODE_API_MODULE(jitterscope, InitAddon)
