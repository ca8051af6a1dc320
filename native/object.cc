// BpfObject: libbpf's object lifecycle as generic verbs (open an embedded object,
// configure, load, attach, read maps, run, close). No probe policy here: which
// programs to load and where to attach them is decided in TypeScript. The
// objects themselves and the ABI table are in embedded.cc. This file: the class
// table, opening and closing; the other verbs are in object_config.cc and
// object_read.cc.
#include "object.h"

namespace js {
namespace {

const napi_type_tag kObjectTag = {0x6a69747465727363ULL, 0x6f70652d6f626a31ULL};

}  // namespace

Napi::Function BpfObject::Define(Napi::Env env) {
  return DefineClass(env, "BpfObject", {
      InstanceMethod<&BpfObject::Programs>("programs"),
      InstanceMethod<&BpfObject::SetAutoload>("setAutoload"),
      InstanceMethod<&BpfObject::SetGlobal>("setGlobal"),
      InstanceMethod<&BpfObject::SetMapMaxEntries>("setMapMaxEntries"),
      InstanceMethod<&BpfObject::ReuseMap>("reuseMap"),
      InstanceMethod<&BpfObject::Load>("load"),
      InstanceMethod<&BpfObject::Attach>("attach"),
      InstanceMethod<&BpfObject::ProgramFd>("programFd"),
      InstanceMethod<&BpfObject::MapFd>("mapFd"),
      InstanceMethod<&BpfObject::ProgramInfo>("programInfo"),
      InstanceMethod<&BpfObject::Lookup>("lookup"),
      InstanceMethod<&BpfObject::TestRun>("testRun"),
      InstanceMethod<&BpfObject::Close>("close"),
  });
}

BpfObject::BpfObject(const Napi::CallbackInfo &info) : Napi::ObjectWrap<BpfObject>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) { ThrowType(env, "BpfObject(name): name must be a string"); return; }
  std::string name = info[0].As<Napi::String>();
  const EmbeddedObject *found = FindEmbedded(name);
  if (!found) { ThrowType(env, "BpfObject: no embedded BPF object named '" + name + "'"); return; }
  size_t sz = 0;
  const void *bytes = found->bytes(&sz);
  LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = found->name);
  obj_ = bpf_object__open_mem(bytes, sz, &opts);
  if (!obj_) {
    int err = -errno;
    obj_ = nullptr;
    { ThrowBpf(env, "open " + name, err, LibbpfLogTail(20)); return; }
  }
  name_ = name;
  info.This().As<Napi::Object>().TypeTag(&kObjectTag);
  env_ = env;
  napi_add_env_cleanup_hook(env, CleanupHook, this);
  hookInstalled_ = true;
}

void BpfObject::Destroy() {
  if (hookInstalled_) {
    napi_remove_env_cleanup_hook(env_, CleanupHook, this);
    hookInstalled_ = false;
  }
  for (auto *&link : links_) {
    if (link) bpf_link__destroy(link);
    link = nullptr;
  }
  if (obj_) bpf_object__close(obj_);
  obj_ = nullptr;
}

bool BpfObject::Alive(Napi::Env env) {
  if (obj_) return true;
  ThrowBpf(env, "BpfObject " + name_ + " is closed", EBADF);
  return false;
}

bpf_program *BpfObject::Prog(const Napi::CallbackInfo &info, size_t i) {
  Napi::Env env = info.Env();
  if (!Alive(env)) return nullptr;
  if (info.Length() <= i || !info[i].IsString()) {
    ThrowType(env, "program name must be a string");
    return nullptr;
  }
  std::string n = info[i].As<Napi::String>();
  bpf_program *p = bpf_object__find_program_by_name(obj_, n.c_str());
  if (!p) ThrowBpf(env, "find program " + n + " in " + name_, ENOENT);
  return p;
}

bpf_map *BpfObject::Map(const Napi::CallbackInfo &info, size_t i) {
  Napi::Env env = info.Env();
  if (!Alive(env)) return nullptr;
  if (info.Length() <= i || !info[i].IsString()) {
    ThrowType(env, "map name must be a string");
    return nullptr;
  }
  std::string n = info[i].As<Napi::String>();
  bpf_map *m = bpf_object__find_map_by_name(obj_, n.c_str());
  if (!m) ThrowBpf(env, "find map " + n + " in " + name_, ENOENT);
  return m;
}

Napi::Value BpfObject::Programs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!Alive(env)) return env.Undefined();
  Napi::Array out = Napi::Array::New(env);
  bpf_program *p;
  uint32_t i = 0;
  bpf_object__for_each_program(p, obj_) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", bpf_program__name(p));
    o.Set("section", bpf_program__section_name(p));
    o.Set("autoload", bpf_program__autoload(p));
    out.Set(i++, o);
  }
  return out;
}

Napi::Value BpfObject::Close(const Napi::CallbackInfo &info) {
  Destroy();
  return info.Env().Undefined();
}

BpfObject *BpfObject::FromValue(Napi::Env env, Napi::Value v) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kObjectTag)) {
    ThrowType(env, "expected a BpfObject");
    return nullptr;
  }
  return Napi::ObjectWrap<BpfObject>::Unwrap(v.As<Napi::Object>());
}

bpf_map *BpfObject::FindMap(Napi::Env env, const std::string &n) {
  if (!Alive(env)) return nullptr;
  bpf_map *m = bpf_object__find_map_by_name(obj_, n.c_str());
  if (!m) ThrowBpf(env, "find map " + n + " in " + name_, ENOENT);
  return m;
}

bpf_map *FindObjectMap(Napi::Env env, Napi::Value object, const std::string &map) {
  BpfObject *o = BpfObject::FromValue(env, object);
  return o ? o->FindMap(env, map) : nullptr;
}

Napi::Object InitObject(Napi::Env env, Napi::Object exports, AddonData *data) {
  Napi::Function ctor = BpfObject::Define(env);
  data->objectCtor = Napi::Persistent(ctor);
  exports.Set("BpfObject", ctor);
  exports.Set("testRunFd", Napi::Function::New(env, TestRunFdJs, "testRunFd"));
  exports.Set("numPossibleCpus", Napi::Number::New(env, libbpf_num_possible_cpus()));
  return exports;
}

}  // namespace js
