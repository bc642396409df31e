// Named choices of a configuration (an optimizer, a task, a device...): one table per choice
// maps each accepted name to its enum value, and parsing, validation, messages and canonical
// text all read that one table.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace angiotrain {

template <class E>
using ChoiceTable = std::vector<std::pair<std::string, E>>;

template <class E>
std::optional<E> FindChoice(const ChoiceTable<E>& table, const std::string& name) {
  for (const auto& [n, v] : table)
    if (n == name) return v;
  return std::nullopt;
}

template <class E>
std::string ChoiceName(const ChoiceTable<E>& table, E value) {
  for (const auto& [n, v] : table)
    if (v == value) return n;
  return "?";
}

template <class E>
std::vector<std::string> ChoiceNames(const ChoiceTable<E>& table) {
  std::vector<std::string> names;
  for (const auto& entry : table) names.push_back(entry.first);
  return names;
}

// "'x' is not one of a, b, c": the message for a name outside the table.
inline std::string NotAChoice(const std::string& name, const std::vector<std::string>& names) {
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  return "'" + name + "' is not one of " + list;
}

}  // namespace angiotrain
