#!/usr/bin/env bash
# Sourced by the scripts that run beitlab: makes sure a Vulkan driver exists. Where none is installed (a fresh
# machine without a GPU driver) it says so and installs Mesa's software driver (lavapipe); where one exists
# (a GPU's driver, or lavapipe already) it installs nothing.

have_vulkan_driver() {
    [ -n "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && return 0
    compgen -G "/usr/share/vulkan/icd.d/*.json" >/dev/null && return 0
    compgen -G "/etc/vulkan/icd.d/*.json" >/dev/null && return 0
    return 1
}

if ! have_vulkan_driver; then
    echo "No Vulkan driver found: installing Mesa's software driver (mesa-vulkan-drivers); beitlab will run on the CPU."
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq mesa-vulkan-drivers >/dev/null
fi
