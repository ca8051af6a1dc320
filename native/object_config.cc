// BpfObject's configuration verbs, all before or at load: which programs load,
// globals, map sizes, shared maps; then load and attach.
#include "object.h"

namespace js {

Napi::Value BpfObject::SetAutoload(const Napi::CallbackInfo &info) {
  bpf_program *p = Prog(info, 0);
  if (!p) return info.Env().Undefined();
  int err = bpf_program__set_autoload(p, info[1].ToBoolean());
  if (err) ThrowBpf(info.Env(), std::string("set autoload ") + bpf_program__name(p), err);
  return info.Env().Undefined();
}

Napi::Value BpfObject::SetGlobal(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!Alive(env)) return env.Undefined();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsBuffer()) {
    ThrowType(env, "setGlobal(name, buffer): name must be a string and value a Buffer");
    return env.Undefined();
  }
  std::string var = info[0].As<Napi::String>();
  Napi::Buffer<uint8_t> value = info[1].As<Napi::Buffer<uint8_t>>();
  if (loaded_) {
    ThrowBpf(env, "set global " + var + ": object already loaded", EBUSY);
    return env.Undefined();
  }
  const struct btf *btf = bpf_object__btf(obj_);
  bpf_map *m;
  bpf_object__for_each_map(m, obj_) {
    __u32 sec_id = bpf_map__btf_value_type_id(m);
    if (!btf || !sec_id) continue;
    const struct btf_type *sec = btf__type_by_id(btf, sec_id);
    if (!sec || !btf_is_datasec(sec)) continue;
    const struct btf_var_secinfo *vs = btf_var_secinfos(sec);
    for (int i = 0; i < btf_vlen(sec); i++, vs++) {
      const struct btf_type *v = btf__type_by_id(btf, vs->type);
      if (var != btf__name_by_offset(btf, v->name_off)) continue;
      if (vs->size != value.Length()) {
        ThrowBpf(env, "set global " + var + ": size is " + std::to_string(vs->size) + " bytes, got " +
                          std::to_string(value.Length()), EINVAL);
        return env.Undefined();
      }
      size_t sz = 0;
      void *data = const_cast<void *>(bpf_map__initial_value(m, &sz));
      if (!data || vs->offset + vs->size > sz) {
        ThrowBpf(env, "set global " + var, EINVAL);
        return env.Undefined();
      }
      memcpy(static_cast<uint8_t *>(data) + vs->offset, value.Data(), vs->size);
      return env.Undefined();
    }
  }
  ThrowBpf(env, "set global " + var + ": no such variable in " + name_, ENOENT);
  return env.Undefined();
}

Napi::Value BpfObject::SetMapMaxEntries(const Napi::CallbackInfo &info) {
  bpf_map *m = Map(info, 0);
  if (!m) return info.Env().Undefined();
  int err = bpf_map__set_max_entries(m, info[1].ToNumber().Uint32Value());
  if (err) ThrowBpf(info.Env(), std::string("set max entries of ") + bpf_map__name(m), err);
  return info.Env().Undefined();
}

Napi::Value BpfObject::ReuseMap(const Napi::CallbackInfo &info) {
  bpf_map *m = Map(info, 0);
  if (!m) return info.Env().Undefined();
  int fd = info[1].ToNumber().Int32Value();
  int err = bpf_map__reuse_fd(m, fd);
  if (err) ThrowBpf(info.Env(), std::string("reuse map fd for ") + bpf_map__name(m), err);
  return info.Env().Undefined();
}

Napi::Value BpfObject::Load(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!Alive(env)) return env.Undefined();
  TakeLibbpfLog();
  int err = bpf_object__load(obj_);
  // Loading parses the kernel's BTF (megabytes) and frees it again; hand
  // that memory back now, or every object loaded adds to the peak RSS.
  malloc_trim(0);
  if (err) {
    ThrowBpf(env, "load " + name_, err, LibbpfLogTail(40));
    return env.Undefined();
  }
  loaded_ = true;
  return env.Undefined();
}

Napi::Value BpfObject::Attach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  bpf_program *p = Prog(info, 0);
  if (!p) return env.Undefined();
  bpf_link *link = bpf_program__attach(p);
  if (!link) {
    int err = -errno;
    ThrowBpf(env, std::string("attach ") + bpf_program__name(p) + " (" + bpf_program__section_name(p) + ")", err,
             LibbpfLogTail(10));
    return env.Undefined();
  }
  links_.push_back(link);
  return Napi::Number::New(env, static_cast<double>(links_.size()));
}

}  // namespace js
